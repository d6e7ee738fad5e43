package ops

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// cronSpec is a parsed standard 5-field cron expression: minute hour
// day-of-month month day-of-week. Each field is a bit set of the allowed
// values.
type cronSpec struct {
	expr                       string
	minute, hour, dom, month   uint64
	dow                        uint64 // 0-6, Sunday = 0 (7 is folded onto 0)
	domRestricted, dowRestrict bool   // the field did not start with "*"
	loc                        *time.Location
}

// cronField describes the range and names of one field.
type cronField struct {
	name     string
	min, max int
	names    []string // names[i] is value min+i (month: jan=1, dow: sun=0)
}

var cronFields = [5]cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day-of-month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	// 7 is Sunday too (Vixie cron); it is folded onto 0 after parsing.
	{name: "day-of-week", min: 0, max: 7, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

var cronMacros = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// cronHorizon bounds the search for the next matching time; an expression
// with no match within it (e.g. "0 0 30 2 *") is rejected by parseCron.
const cronHorizon = 5 * 366 * 24 * time.Hour

// parseCron parses a standard cron expression (5 fields; *, lists, ranges,
// steps, month and weekday names, and the @daily style macros) evaluated in
// loc. Like Vixie cron, when both day-of-month and day-of-week are restricted
// a day matches when either matches.
func parseCron(expr string, loc *time.Location) (*cronSpec, error) {
	s := &cronSpec{expr: expr, loc: loc}
	fields := strings.Fields(expr)
	if len(fields) > 0 && strings.HasPrefix(fields[0], "@") {
		m, ok := cronMacros[strings.ToLower(fields[0])]
		if !ok || len(fields) != 1 {
			return nil, fmt.Errorf("cron %q: unknown macro (accepted: @yearly @monthly @weekly @daily @midnight @hourly)", expr)
		}
		fields = strings.Fields(m)
	}
	if len(fields) != 5 {
		return nil, fmt.Errorf("cron %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", expr, len(fields))
	}
	sets := [5]*uint64{&s.minute, &s.hour, &s.dom, &s.month, &s.dow}
	for i, f := range fields {
		bits, err := parseCronField(f, cronFields[i])
		if err != nil {
			return nil, fmt.Errorf("cron %q: %s field %q: %w", expr, cronFields[i].name, f, err)
		}
		*sets[i] = bits
	}
	if s.dow&(1<<7) != 0 {
		s.dow = s.dow&^(1<<7) | 1
	}
	s.domRestricted = !strings.HasPrefix(fields[2], "*")
	s.dowRestrict = !strings.HasPrefix(fields[4], "*")
	from := time.Date(2000, 1, 1, 0, 0, 0, 0, loc)
	if _, ok := s.nextAfter(from); !ok {
		return nil, fmt.Errorf("cron %q never matches (e.g. day 30 in February)", expr)
	}
	return s, nil
}

// parseCronField parses one comma-separated field into a bit set.
func parseCronField(f string, fd cronField) (uint64, error) {
	var bits uint64
	for _, part := range strings.Split(f, ",") {
		if part == "" {
			return 0, errors.New("empty list element")
		}
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("step %q is not a positive number", stepStr)
			}
			step = n
		}
		lo, hi := fd.min, fd.max
		switch {
		case rng == "*":
			if fd.name == "day-of-week" {
				hi = 6 // * is 0-6, not 0-7
			}
		case strings.Contains(rng, "-"):
			a, b, _ := strings.Cut(rng, "-")
			var err error
			if lo, err = cronValue(a, fd); err != nil {
				return 0, err
			}
			if hi, err = cronValue(b, fd); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fmt.Errorf("range %s is backwards", rng)
			}
		default:
			v, err := cronValue(rng, fd)
			if err != nil {
				return 0, err
			}
			lo, hi = v, v
			if hasStep { // "5/15" means 5-max/15
				hi = fd.max
			}
		}
		for v := lo; v <= hi; v += step {
			bits |= 1 << uint(v)
		}
	}
	return bits, nil
}

// cronValue parses a number or a name within the field's range.
func cronValue(s string, fd cronField) (int, error) {
	for i, n := range fd.names {
		if strings.EqualFold(s, n) {
			return fd.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < fd.min || v > fd.max {
		return 0, fmt.Errorf("%d is out of range %d-%d", v, fd.min, fd.max)
	}
	return v, nil
}

func has(bits uint64, v int) bool { return bits&(1<<uint(v)) != 0 }

// dayMatches applies the day-of-month / day-of-week rule.
func (s *cronSpec) dayMatches(t time.Time) bool {
	dom, dow := has(s.dom, t.Day()), has(s.dow, int(t.Weekday()))
	if s.domRestricted && s.dowRestrict {
		return dom || dow
	}
	return dom && dow
}

// next returns the first matching time strictly after t (at a whole minute).
func (s *cronSpec) next(t time.Time) time.Time {
	n, _ := s.nextAfter(t)
	return n
}

func (s *cronSpec) nextAfter(t time.Time) (time.Time, bool) {
	t = t.In(s.loc).Truncate(time.Minute).Add(time.Minute)
	limit := t.Add(cronHorizon)
	for t.Before(limit) {
		switch {
		case !has(s.month, int(t.Month())):
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, s.loc)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, s.loc)
		case !has(s.hour, t.Hour()):
			// The next wall-clock hour; across a DST fall-back that hour
			// can lie before t, then step a minute instead.
			n := time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, s.loc)
			if !n.After(t) {
				n = t.Add(time.Minute)
			}
			t = n
		case !has(s.minute, t.Minute()):
			t = t.Add(time.Minute)
		default:
			return t, true
		}
	}
	return time.Time{}, false
}

func (s *cronSpec) String() string { return s.expr }
