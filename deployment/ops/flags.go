package ops

import (
	"flag"
	"fmt"
	"time"
)

// flagRange is the accepted range of a numeric or duration flag.
type flagRange struct {
	ok   func(v float64) bool // v is the value; a duration in nanoseconds
	want string               // the range, as the usage error states it
}

func positive(v float64) bool    { return v > 0 }
func notNegative(v float64) bool { return v >= 0 }

// flagRanges are the accepted ranges of every numeric and duration flag of
// every command, by flag name: a name means the same in each command that has
// it. parse checks the values before a command runs, so before any
// connection, and refuses to run a command with a numeric flag missing here.
var flagRanges = map[string]flagRange{
	"timeout":        {positive, "a duration > 0"},
	"interval":       {positive, "a duration > 0"},
	"wait":           {positive, "a duration > 0"},
	"scrape-timeout": {positive, "a duration > 0"},
	"retention":      {notNegative, "a duration >= 0 (0 keeps all)"},
	"queue-refresh":  {notNegative, "a duration >= 0 (0 = every scrape)"},
	"every": {func(v float64) bool { return v == 0 || v >= float64(time.Second) },
		"a duration of at least 1s"},
	"memory-warn": {func(v float64) bool { return v > 0 && v <= 100 },
		"a percentage of maxmemory > 0 and <= 100"},
	"count":   {notNegative, "an integer >= 0"},
	"top":     {notNegative, "an integer >= 0"},
	"samples": {notNegative, "an integer >= 0 (0 = exact)"},
	"batch":   {positive, "an integer >= 1"},
}

// numericValue returns the value of an integer, float or duration flag.
func numericValue(f *flag.Flag) (float64, bool) {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return 0, false
	}
	switch v := g.Get().(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		return v, true
	case time.Duration:
		return float64(v), true
	}
	return 0, false
}

// checkRanges returns a usage error for the first numeric flag of fs outside
// its range (NaN is outside every range), and an error for a numeric flag
// with no entry in flagRanges (a bug: parse checks this before parsing, so
// even --help fails and TestFlagRanges catches it).
func checkRanges(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, numeric := numericValue(f)
		if err != nil || !numeric {
			return
		}
		r, ok := flagRanges[f.Name]
		switch {
		case !ok:
			err = fmt.Errorf("bug: --%s has no accepted range in flagRanges", f.Name)
		case !r.ok(v):
			err = withCode(ExitUsage, fmt.Errorf("--%s must be %s, got %s", f.Name, r.want, f.Value))
		}
	})
	return err
}
