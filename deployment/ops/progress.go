package ops

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress prints a one-line progress bar to w, redrawn with \r at most every
// 200ms. A nil *progress is a no-op, so callers need not check whether
// progress is enabled.
type progress struct {
	w     io.Writer
	label string
	total int64
	start time.Time
	last  time.Time
	done  int64 // bytes or items seen, for progressWriter
}

// newProgress returns a progress bar when enabled, else nil.
func newProgress(enabled bool, w io.Writer, label string, total int64) *progress {
	if !enabled {
		return nil
	}
	return &progress{w: w, label: label, total: total, start: time.Now()}
}

// set draws the bar for done units, throttled.
func (p *progress) set(done int64) {
	if p == nil || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw(done)
}

func (p *progress) draw(done int64) {
	rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-3)
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%s %d (%.0f/s)   ", p.label, done, rate)
		return
	}
	pct := min(float64(done)*100/float64(p.total), 100)
	n := int(pct / 100 * 30)
	fmt.Fprintf(p.w, "\r%s [%s%s] %5.1f%% %d/%d (%.0f/s)   ", p.label, strings.Repeat("=", n), strings.Repeat(" ", 30-n), pct, done, p.total, rate)
}

// finish draws the final state and ends the line.
func (p *progress) finish(done int64) {
	if p == nil {
		return
	}
	p.draw(done)
	fmt.Fprintf(p.w, " %v\n", time.Since(p.start).Round(time.Millisecond))
}
