package ops

import (
	"flag"
	"io"
	"strings"
	"testing"
)

// TestFlagRanges: every numeric and duration flag outside its range is a
// usage error naming the flag and the range, before any connection (the
// address 127.0.0.1:1 would give exit 3); the bounds themselves pass.
func TestFlagRanges(t *testing.T) {
	dir := t.TempDir()
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"health", "--memory-warn", "-5"}, "--memory-warn must be a percentage of maxmemory > 0 and <= 100"},
		{[]string{"health", "--memory-warn", "0"}, "--memory-warn"},
		{[]string{"health", "--memory-warn", "150"}, "--memory-warn"},
		{[]string{"health", "--memory-warn", "NaN"}, "--memory-warn"},
		{[]string{"monitor", "--memory-warn", "100.5"}, "--memory-warn"},
		{[]string{"health", "--timeout", "0"}, "--timeout must be a duration > 0"},
		{[]string{"stats", "--timeout", "-1s"}, "--timeout"},
		{[]string{"healthz", "--timeout", "0s"}, "--timeout"},
		{[]string{"monitor", "--interval", "0"}, "--interval must be a duration > 0"},
		{[]string{"monitor", "--interval", "-5s"}, "--interval"},
		{[]string{"monitor", "--count", "-1"}, "--count must be an integer >= 0"},
		{[]string{"slowlog", "--count", "-1"}, "--count"},
		{[]string{"stats", "--top", "-1"}, "--top must be an integer >= 0"},
		{[]string{"analyze", "--batch", "0"}, "--batch must be an integer >= 1"},
		{[]string{"analyze", "--top", "-2"}, "--top"},
		{[]string{"analyze", "--samples", "-1"}, "--samples"},
		{[]string{"backup", "--dir", dir, "--retention", "-1h"}, "--retention must be a duration >= 0"},
		{[]string{"backup", "--dir", dir, "--wait", "0"}, "--wait must be a duration > 0"},
		{[]string{"restore", "--wait", "-1m", "x.rdb"}, "--wait"},
		{[]string{"schedule", "--every", "500ms", "--dir", dir}, "--every must be a duration of at least 1s"},
		{[]string{"schedule", "--every", "-2s", "--dir", dir}, "--every"},
		{[]string{"schedule", "--every", "2s", "--dir", dir, "--retention", "-1s"}, "--retention"},
		{[]string{"metrics", "--scrape-timeout", "0s"}, "--scrape-timeout must be a duration > 0"},
		{[]string{"metrics", "--queue-refresh", "-1m"}, "--queue-refresh must be a duration >= 0"},
	}
	for _, tc := range bad {
		r := cli(t, "127.0.0.1:1", nil, tc.args...)
		if r.code != ExitUsage || r.stdout != "" || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: want exit 2 and one line naming %q: %v", tc.args, tc.want, r)
		}
	}
	// The bounds are accepted: the command goes on and finds nothing listening.
	for _, args := range [][]string{
		{"health", "--memory-warn", "100"},
		{"health", "--memory-warn", "0.5", "--timeout", "1ns"},
		{"monitor", "--count", "0", "--interval", "1ms"},
		{"slowlog", "--count", "0"},
		{"analyze", "--batch", "1", "--top", "0", "--samples", "0"},
		{"backup", "--dir", dir, "--retention", "0"},
	} {
		if r := cli(t, "127.0.0.1:1", nil, args...); r.code != ExitUnreachable {
			t.Errorf("%v: want exit 3 (accepted, then unreachable): %v", args, r)
		}
	}
}

// TestFlagRangesCoverEveryFlag: a numeric flag without an entry in
// flagRanges is refused even with --help (TestUsage runs --help on every
// command, so a new flag cannot be forgotten).
func TestFlagRangesCoverEveryFlag(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("not-in-the-table", 1, "")
	for _, args := range [][]string{nil, {"--help"}} {
		err := parse(fs, args)
		if err == nil || exitCode(err) == ExitUsage || exitCode(err) == ExitOK || !strings.Contains(err.Error(), "--not-in-the-table") {
			t.Errorf("parse(%v) = %v (exit %d), want a bug error naming the flag", args, err, exitCode(err))
		}
	}
}
