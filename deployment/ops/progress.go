package ops

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress is a one-line progress bar on w (schollz/progressbar), redrawn at most every 200ms. A nil
// *progress is a no-op, so callers need not check whether progress is enabled.
type progress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

// newProgress returns a progress bar when enabled, else nil. A total of 0 or less (unknown) shows a
// count and a rate instead of a bar.
func newProgress(enabled bool, w io.Writer, label string, total int64) *progress {
	if !enabled {
		return nil
	}
	if total <= 0 {
		total = -1
	}
	return &progress{w: w, bar: progressbar.NewOptions64(total, progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label), progressbar.OptionSetWidth(30), progressbar.OptionShowCount(),
		progressbar.OptionShowIts(), progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish())}
}

// set moves the bar to done units (throttled).
func (p *progress) set(done int64) {
	if p != nil {
		_ = p.bar.Set64(done)
	}
}

// setTotal sets the total once it is known.
func (p *progress) setTotal(total int64) {
	if p != nil {
		p.bar.ChangeMax64(total)
	}
}

// Write counts len(b) more units done, so that a progress bar can follow an io.Copy.
func (p *progress) Write(b []byte) (int, error) {
	if p != nil {
		_ = p.bar.Add(len(b))
	}
	return len(b), nil
}

// finish draws the final state and ends the line.
func (p *progress) finish(done int64) {
	if p == nil {
		return
	}
	_ = p.bar.Set64(done)
	_ = p.bar.Finish()
	fmt.Fprintln(p.w)
}
