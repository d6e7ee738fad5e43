// Package bench holds the project's benchmarks (issue 8): each figure is measured against a baseline
// in the same run and printed as a ratio, never asserted. `make bench` (deployment/scripts/bench.sh)
// runs them and writes BENCHMARKS.md with cmd/benchreport; plain `go test ./...` runs none of them.
//
// The heavy benchmarks (redis-benchmark, Celery, redis-ops analyze/backup, Docker time to healthy)
// run once (-benchtime 1x) and repeat internally BENCH_REPS times, alternating ours and the baseline
// so that drift on a noisy machine hits both. Each appends its series to the JSON-lines file named
// by BENCH_RESULTS (when set) for the report. Sizes and repetitions come from environment variables
// (see Env* below and bench.sh).
package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
)

// Series is the repeated measurements of one metric for one variant (ours or a baseline).
type Series struct {
	Section  string `json:"section"`          // e.g. "1. redis-benchmark"
	Metric   string `json:"metric"`           // e.g. "SET requests/s"
	Variant  string `json:"variant"`          // e.g. "ours: dev config"
	Unit     string `json:"unit"`             // e.g. "req/s"
	Better   string `json:"better"`           // "higher" or "lower"
	Baseline bool   `json:"baseline"`         // the variant the others are divided by
	Target   string `json:"target,omitempty"` // e.g. ">= 0.90" for the ratio ours/baseline
	// Paired says that Values[i] and the baseline's Values[i] were measured in the same repetition,
	// next to each other: the report's ratio is then the median of the per-repetition ratios, with
	// their min and max, so that a slow period of the machine hits both sides of one ratio.
	Paired bool      `json:"paired,omitempty"`
	Values []float64 `json:"values"`
}

// Note is a line of context for a section (settings used, what was not measured and why).
type Note struct {
	Section string `json:"section"`
	Text    string `json:"note"`
}

var writeMu sync.Mutex

// Record appends s to $BENCH_RESULTS (when set) and logs its median.
func Record(b testing.TB, s Series) {
	b.Helper()
	med, lo, hi := Stats(s.Values)
	b.Logf("FIGURE %s | %s | %s: median %.4g %s (min %.4g, max %.4g, n=%d)", s.Section, s.Metric, s.Variant, med, s.Unit, lo, hi, len(s.Values))
	write(b, s)
}

// Annotate appends a note for a section to $BENCH_RESULTS (when set) and logs it.
func Annotate(b testing.TB, section, format string, args ...any) {
	b.Helper()
	n := Note{Section: section, Text: fmt.Sprintf(format, args...)}
	b.Logf("NOTE %s: %s", section, n.Text)
	write(b, n)
}

func write(b testing.TB, v any) {
	path := os.Getenv("BENCH_RESULTS")
	if path == "" {
		return
	}
	line, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	writeMu.Lock()
	defer writeMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		b.Fatal(err)
	}
}

// Stats returns the median, minimum and maximum of v (zeros when empty).
func Stats(v []float64) (median, min, max float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

// EnvInt returns the integer in environment variable name, or def when unset; it fails the benchmark
// on a malformed or non-positive value.
func EnvInt(b testing.TB, name string, def int) int {
	b.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// Reps is the number of repetitions of a heavy benchmark: $BENCH_REPS, default def.
func Reps(b testing.TB, def int) int { return EnvInt(b, "BENCH_REPS", def) }
