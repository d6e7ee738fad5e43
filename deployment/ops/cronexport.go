package ops

import "time"

// ValidateCron checks a 5-field cron expression as `redis-ops schedule --cron` reads it, so that the
// stack settings refuse what the scheduler would refuse.
func ValidateCron(expr string) error {
	_, err := parseCron(expr, time.UTC)
	return err
}
