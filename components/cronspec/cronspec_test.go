package cronspec

import (
	"strings"
	"testing"
	"time"
)

func TestCronNext(t *testing.T) {
	utc := time.UTC
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, utc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		expr, from string
		want       []string // the next few times, in order
	}{
		{"0 2 * * *", "2025-03-10 01:59", []string{"2025-03-10 02:00", "2025-03-11 02:00"}},
		{"0 2 * * *", "2025-03-10 02:00", []string{"2025-03-11 02:00"}}, // strictly after
		{"0 2 * * *", "2025-12-31 03:00", []string{"2026-01-01 02:00"}},
		{"*/15 * * * *", "2025-03-10 10:07", []string{"2025-03-10 10:15", "2025-03-10 10:30", "2025-03-10 10:45", "2025-03-10 11:00"}},
		{"5/20 * * * *", "2025-03-10 10:06", []string{"2025-03-10 10:25", "2025-03-10 10:45", "2025-03-10 11:05"}},
		{"0,30 9-10 * * *", "2025-03-10 08:00", []string{"2025-03-10 09:00", "2025-03-10 09:30", "2025-03-10 10:00", "2025-03-10 10:30", "2025-03-11 09:00"}},
		{"0 0-12/6 * * *", "2025-03-10 00:00", []string{"2025-03-10 06:00", "2025-03-10 12:00", "2025-03-11 00:00"}},
		{"30 4 1 * *", "2025-01-15 00:00", []string{"2025-02-01 04:30", "2025-03-01 04:30"}},
		{"0 0 29 2 *", "2025-01-01 00:00", []string{"2028-02-29 00:00"}},                                         // leap day
		{"0 0 31 * *", "2025-04-01 00:00", []string{"2025-05-31 00:00", "2025-07-31 00:00"}},                     // skips 30-day months
		{"0 3 * * 1-5", "2025-03-07 04:00", []string{"2025-03-10 03:00", "2025-03-11 03:00"}},                    // Fri -> Mon
		{"0 3 * * sun", "2025-03-10 00:00", []string{"2025-03-16 03:00"}},                                        // names
		{"0 0 * JAN,jul *", "2025-02-01 00:00", []string{"2025-07-01 00:00"}},                                    // month names
		{"0 0 13 * 5", "2025-06-01 00:00", []string{"2025-06-06 00:00", "2025-06-13 00:00", "2025-06-20 00:00"}}, // dom OR dow
		{"0 0 */10 * *", "2025-06-01 00:00", []string{"2025-06-11 00:00", "2025-06-21 00:00", "2025-07-01 00:00"}},
		{"@daily", "2025-06-01 12:00", []string{"2025-06-02 00:00"}},
		{"@hourly", "2025-06-01 12:00", []string{"2025-06-01 13:00"}},
		{"@weekly", "2025-06-01 12:00", []string{"2025-06-08 00:00"}},
		{"* * * * *", "2025-06-01 12:00", []string{"2025-06-01 12:01", "2025-06-01 12:02"}},
	}
	for _, c := range cases {
		t.Run(c.expr+" from "+c.from, func(t *testing.T) {
			s, err := Parse(c.expr, utc)
			if err != nil {
				t.Fatal(err)
			}
			cur := at(c.from).Add(17 * time.Second) // seconds are ignored
			for _, w := range c.want {
				cur = s.Next(cur)
				if got := cur.Format("2006-01-02 15:04"); got != w {
					t.Fatalf("next = %s, want %s", got, w)
				}
			}
		})
	}
}

func TestCronDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	// 2025-03-30 02:00-03:00 does not exist in Berlin; 2025-10-26 02:00-03:00 happens twice.
	s, _ := Parse("30 2 * * *", berlin)
	got := s.Next(time.Date(2025, 3, 29, 12, 0, 0, 0, berlin))
	if got.Day() != 29 && got.Day() != 30 && got.Day() != 31 || got.After(time.Date(2025, 3, 31, 2, 31, 0, 0, berlin)) {
		t.Errorf("spring forward: %v", got)
	}
	s, _ = Parse("0 * * * *", berlin)
	cur := time.Date(2025, 10, 26, 1, 30, 0, 0, berlin)
	for i := 0; i < 4; i++ {
		n := s.Next(cur)
		if !n.After(cur) || n.Sub(cur) > time.Hour {
			t.Fatalf("fall back: next(%v) = %v", cur, n)
		}
		cur = n
	}
	// Zones with half-hour offsets.
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	s, _ = Parse("0 2 * * *", kolkata)
	n := s.Next(time.Date(2025, 1, 1, 9, 15, 0, 0, kolkata))
	if want := time.Date(2025, 1, 2, 2, 0, 0, 0, kolkata); !n.Equal(want) {
		t.Errorf("Kolkata: %v, want %v", n, want)
	}
}

func TestCronParseErrors(t *testing.T) {
	bad := map[string]string{
		"":                 "empty spec string",
		"0 2 * *":          "expected exactly 5 fields",
		"0 2 * * * *":      "expected exactly 5 fields",
		"60 * * * *":       "above maximum (59)",
		"* 24 * * *":       "above maximum (23)",
		"* * 0 * *":        "below minimum (1)",
		"* * * 13 *":       "above maximum (12)",
		"* * * * 7":        "above maximum (6)", // Sunday is 0 or sun
		"5-1 * * * *":      "beyond end of range",
		"*/0 * * * *":      "should be a positive number",
		"*/x * * * *":      "failed to parse int",
		"1,,2 * * * *":     "empty list element",
		"a * * * *":        "failed to parse int",
		"0 0 30 2 *":       "never matches",
		"0 0 31 4,6,9 *":   "never matches",
		"@every 5m":        "not a calendar schedule",
		"TZ=UTC 0 2 * * *": "time zone prefix",
		"-1 * * * *":       "failed to parse int",
		"0 2 * * mon-fri":  "",
		"@daily":           "",
	}
	for expr, want := range bad {
		_, err := Parse(expr, time.UTC)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", expr, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", expr, err, want)
		}
	}
}
