package ops

import (
	"time"

	"github.com/emailclient/emailclient-infra/components/cronspec"
)

// cronSpec is a backup schedule (components/cronspec: robfig/cron's standard parser).
type cronSpec struct{ *cronspec.Spec }

// parseCron parses a standard 5-field cron expression evaluated in loc.
func parseCron(expr string, loc *time.Location) (cronSpec, error) {
	s, err := cronspec.Parse(expr, loc)
	return cronSpec{s}, err
}

// next returns the first matching time strictly after t.
func (s cronSpec) next(t time.Time) time.Time { return s.Next(t) }
