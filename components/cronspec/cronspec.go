// Package cronspec parses the backup schedule, a standard 5-field cron expression, with
// github.com/robfig/cron/v3: the one parser the stack settings validate with and `redis-ops schedule
// --cron` runs by, so the settings refuse exactly what the scheduler would. A leaf package: the Pulumi
// components import it without importing the ops tool.
package cronspec

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec is a parsed schedule evaluated in one location.
type Spec struct {
	expr  string
	sched *cron.SpecSchedule
}

// horizon bounds the search for a first match: robfig/cron gives up after five years, so an
// expression such as "0 0 30 2 *" never matches.
const horizon = 5 * 366 * 24 * time.Hour

// Parse parses expr (minute hour day-of-month month day-of-week: *, lists, ranges, steps, month and
// weekday names 0-6 or sun-sat, and @yearly @monthly @weekly @daily @hourly) evaluated in loc. As in
// Vixie cron, when both day fields are restricted a day matches when either does. Refused: a TZ=
// prefix (the location is the caller's), @every (not a calendar schedule) and expressions that never
// match.
func Parse(expr string, loc *time.Location) (*Spec, error) {
	trimmed := strings.TrimSpace(expr)
	switch {
	case strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ="):
		return nil, fmt.Errorf("cron %q: a time zone prefix is not accepted (schedules run in UTC in the stack)", expr)
	case strings.HasPrefix(trimmed, "@every"):
		return nil, fmt.Errorf("cron %q: @every is not a calendar schedule; accepted: 5 fields or @yearly, @monthly, @weekly, @daily, @hourly", expr)
	}
	for _, field := range strings.Fields(trimmed) {
		if strings.Contains(","+field+",", ",,") {
			return nil, fmt.Errorf("cron %q: empty list element in %q", expr, field)
		}
	}
	s, err := cron.ParseStandard(trimmed)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %w; accepted: 5 fields (minute hour day-of-month month day-of-week) or @daily-style macros", expr, err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("cron %q: not a calendar schedule", expr)
	}
	spec.Location = loc
	p := &Spec{expr: expr, sched: spec}
	now := time.Now().In(loc)
	if next := p.Next(now); next.IsZero() || next.Sub(now) > horizon {
		return nil, fmt.Errorf("cron %q: never matches (no such date within five years)", expr)
	}
	return p, nil
}

// Next is the first matching time strictly after t (at a whole minute), in the Spec's location; zero
// when there is none within five years.
func (p *Spec) Next(t time.Time) time.Time { return p.sched.Next(t) }

// String is the expression as given.
func (p *Spec) String() string { return p.expr }
