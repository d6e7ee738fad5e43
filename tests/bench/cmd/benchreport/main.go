// Command benchreport writes BENCHMARKS.md from what deployment/scripts/bench.sh collected: the
// JSON-lines series and notes of tests/bench (BENCH_RESULTS) and the `go test -bench` output of the
// program benchmarks. Every figure is shown with its repetitions, median, min, max and the ratio of
// its median to the median of the baseline measured in the same run.
//
//	go run ./tests/bench/cmd/benchreport -results R.jsonl -gotest out1.txt,out2.txt -command "make bench" -o BENCHMARKS.md
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emailclient/emailclient-infra/tests/bench"
)

const sectionProgram = "4. Program evaluation under mocks (go test -bench)"

func main() {
	results := flag.String("results", "", "JSON-lines file written by tests/bench (BENCH_RESULTS)")
	gotest := flag.String("gotest", "", "comma-separated files with `go test -bench` output")
	command := flag.String("command", "make bench", "the command that produced the results")
	settings := flag.String("settings", "", "the size and repetition settings of the run, one line")
	elapsed := flag.String("elapsed", "", "wall time of the whole run")
	out := flag.String("o", "BENCHMARKS.md", "output file")
	flag.Parse()

	var series []bench.Series
	notes := map[string][]string{}
	if *results != "" {
		if err := readResults(*results, &series, notes); err != nil {
			fatal(err)
		}
	}
	var skipped []string
	for _, f := range strings.Split(*gotest, ",") {
		if f == "" {
			continue
		}
		s, sk, err := readGoTest(f)
		if err != nil {
			fatal(err)
		}
		series = append(series, s...)
		skipped = append(skipped, sk...)
	}
	var b strings.Builder
	writeReport(&b, series, notes, skipped, *command, *settings, *elapsed)
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		fatal(err)
	}
	fmt.Printf("wrote %s (%d series)\n", *out, len(series))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchreport:", err)
	os.Exit(1)
}

func readResults(path string, series *[]bench.Series, notes map[string][]string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var probe map[string]any
		if err := json.Unmarshal(line, &probe); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if _, ok := probe["note"]; ok {
			var n bench.Note
			_ = json.Unmarshal(line, &n)
			notes[n.Section] = append(notes[n.Section], n.Text)
			continue
		}
		var s bench.Series
		_ = json.Unmarshal(line, &s)
		*series = append(*series, s)
	}
	return sc.Err()
}

var (
	benchLine = regexp.MustCompile(`^(Benchmark\w+?)(-\d+)?\s+(\d+)\s+(.*)$`)
	skipLine  = regexp.MustCompile(`^--- SKIP: (Benchmark\w+)`)
	failLine  = regexp.MustCompile(`^--- FAIL: (Benchmark\w+)`)
)

// readGoTest turns the lines of BenchmarkProdProgram and BenchmarkEmptyProgram into series (one value
// per -count) and collects the benchmarks that were skipped or failed, with the line that says why.
func readGoTest(path string) ([]bench.Series, []string, error) {
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil, nil // that group of benchmarks was not selected
	}
	if err != nil {
		return nil, nil, err
	}
	lines := strings.Split(string(raw), "\n")
	type key struct{ metric, variant string }
	vals := map[key][]float64{}
	var order []key
	var skipped []string
	for i, l := range lines {
		l = strings.TrimRight(l, "\r")
		if m := skipLine.FindStringSubmatch(l); m != nil || failLine.MatchString(l) {
			name, verb := "", "skipped"
			if m != nil {
				name = m[1]
			} else {
				name, verb = failLine.FindStringSubmatch(l)[1], "FAILED"
			}
			why := ""
			for j := i + 1; j < len(lines) && j < i+30; j++ {
				t := strings.TrimSpace(lines[j])
				if strings.HasPrefix(t, "---") || strings.HasPrefix(t, "Benchmark") || t == "PASS" || t == "FAIL" {
					break
				}
				if verb == "skipped" || strings.Contains(t, ".go:") {
					why = t
					if verb == "skipped" {
						break
					}
				}
			}
			skipped = append(skipped, fmt.Sprintf("%s %s: %s", name, verb, why))
			continue
		}
		m := benchLine.FindStringSubmatch(l)
		if m == nil || (m[1] != "BenchmarkProdProgram" && m[1] != "BenchmarkEmptyProgram") {
			continue
		}
		f := strings.Fields(m[4])
		for j := 0; j+1 < len(f); j += 2 {
			v, err := strconv.ParseFloat(f[j], 64)
			if err != nil {
				continue
			}
			var metric string
			switch f[j+1] {
			case "ns/op":
				metric, v = "time per evaluation", v/1e6
			case "B/op":
				metric, v = "memory allocated per evaluation", v/1024
			case "allocs/op":
				metric = "allocations per evaluation"
			default:
				continue
			}
			k := key{metric, m[1]}
			if _, ok := vals[k]; !ok {
				order = append(order, k)
			}
			vals[k] = append(vals[k], v)
		}
	}
	var out []bench.Series
	for _, k := range order {
		unit := map[string]string{"time per evaluation": "ms", "memory allocated per evaluation": "KiB", "allocations per evaluation": "allocs"}[k.metric]
		variant := "ours: prod program (BenchmarkProdProgram)"
		if k.variant == "BenchmarkEmptyProgram" {
			variant = "empty program, same mocks and stack file (BenchmarkEmptyProgram)"
		}
		out = append(out, bench.Series{Section: sectionProgram, Metric: k.metric, Variant: variant, Unit: unit,
			Better: "lower", Baseline: k.variant == "BenchmarkEmptyProgram", Values: vals[k]})
	}
	return out, skipped, nil
}

func sh(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "not available"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func memTotal() string {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			f := strings.Fields(l)
			if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
				return fmt.Sprintf("%.1f GiB (MemTotal %s kB)", kb/(1<<20), f[1])
			}
		}
	}
	return "unknown"
}

func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, v, _ := strings.Cut(l, ":")
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func num(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

type row struct {
	section, metric, variant, unit, better, target string
	n                                              int
	med, lo, hi                                    float64
	ratio                                          float64 // 0 when this is the baseline or there is none
	ratioLo, ratioHi                               float64 // the spread of the per-repetition ratios (paired series only)
	baseline                                       bool
	baseName                                       string
}

func rows(series []bench.Series) (sections []string, bySection map[string][]row) {
	bySection = map[string][]row{}
	base := map[[2]string]bench.Series{}
	for _, s := range series {
		if s.Baseline {
			base[[2]string{s.Section, s.Metric}] = s
		}
	}
	for _, s := range series {
		if _, ok := bySection[s.Section]; !ok {
			sections = append(sections, s.Section)
		}
		med, lo, hi := bench.Stats(s.Values)
		r := row{section: s.Section, metric: s.Metric, variant: s.Variant, unit: s.Unit, better: s.Better, target: s.Target,
			n: len(s.Values), med: med, lo: lo, hi: hi, baseline: s.Baseline}
		if bs, ok := base[[2]string{s.Section, s.Metric}]; ok && !s.Baseline {
			if s.Paired && len(s.Values) == len(bs.Values) {
				r.ratio, r.ratioLo, r.ratioHi = bench.Stats(pairedRatios(s.Values, bs.Values))
				r.baseName = bs.Variant
			} else if bm, _, _ := bench.Stats(bs.Values); bm != 0 {
				r.ratio, r.baseName = med/bm, bs.Variant
			}
		}
		bySection[s.Section] = append(bySection[s.Section], r)
	}
	sort.Strings(sections)
	return sections, bySection
}

// pairedRatios is ours[i]/base[i] for every repetition i with a non-zero baseline.
func pairedRatios(ours, base []float64) []float64 {
	var out []float64
	for i := range ours {
		if base[i] != 0 {
			out = append(out, ours[i]/base[i])
		}
	}
	return out
}

// ratioText is the ratio with, for paired series, the spread of the per-repetition ratios.
func ratioText(r row, bold bool) string {
	t := fmt.Sprintf("%.2f", r.ratio)
	if bold {
		t = "**" + t + "**"
	}
	if r.ratioHi != 0 {
		t += fmt.Sprintf(" (%.2f-%.2f)", r.ratioLo, r.ratioHi)
	}
	return t
}

func verdict(r row) string {
	if r.target == "" || r.ratio == 0 {
		return ""
	}
	t := strings.TrimSpace(r.target)
	var ok bool
	switch {
	case strings.HasPrefix(t, ">="):
		v, _ := strconv.ParseFloat(strings.TrimSpace(t[2:]), 64)
		ok = r.ratio >= v
	case strings.HasPrefix(t, "<="):
		v, _ := strconv.ParseFloat(strings.TrimSpace(t[2:]), 64)
		ok = r.ratio <= v
	default:
		return "target " + t
	}
	if ok {
		return "meets " + t
	}
	return "**misses " + t + "**"
}

func writeReport(b *strings.Builder, series []bench.Series, notes map[string][]string, skipped []string, command, settings, elapsed string) {
	sections, by := rows(series)
	fmt.Fprintf(b, "# Benchmarks\n\n")
	fmt.Fprintf(b, "Generated by `%s` on %s; do not edit by hand.\n", command, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(b, "Every ratio is ours / baseline, both measured in the same run on the same machine (the tests never assert timings).\n")
	fmt.Fprintf(b, "Where both sides ran next to each other in every repetition (paired), the ratio is the median of the per-repetition\n")
	fmt.Fprintf(b, "ratios, with their min-max; otherwise it is the ratio of the medians. For throughput (higher is better) a ratio above 1\n")
	fmt.Fprintf(b, "means ours is faster; for times, CPU, memory and allocations (lower is better) a ratio below 1 means ours is cheaper.\n\n")
	fmt.Fprintf(b, "## How to reproduce\n\n```sh\n%s\n```\n\n", command)
	fmt.Fprintf(b, "`make bench` runs `deployment/scripts/bench.sh`; sizes and repetitions come from environment variables\n")
	fmt.Fprintf(b, "(`BENCH_REPS`, `BENCH_KEYS`, `BENCH_BACKUP_MB`, `BENCH_REQUESTS`, `BENCH_CALLGRIND_REQUESTS`, `BENCH_CALLGRIND_DIR`, `BENCH_CELERY_TASKS`, `BENCH_DOCKER_MB`, `BENCH_DOCKER_REPS`, `BENCH_PROGRAM_COUNT`, `BENCH_ONLY`),\n")
	fmt.Fprintf(b, "e.g. `BENCH_KEYS=100000 BENCH_BACKUP_MB=128 BENCH_REPS=3 make bench` for a quick run. The benchmarks are in `tests/bench`.\n\n")
	if settings != "" {
		fmt.Fprintf(b, "This run: `%s`", settings)
		if elapsed != "" {
			fmt.Fprintf(b, "; the whole run took %s", elapsed)
		}
		fmt.Fprintf(b, ".\n\n")
	}
	fmt.Fprintf(b, "## Machine and versions\n\n| | |\n|---|---|\n")
	fmt.Fprintf(b, "| cores (nproc) | %s (%s) |\n", sh("nproc"), cpuModel())
	fmt.Fprintf(b, "| memory | %s |\n", memTotal())
	fmt.Fprintf(b, "| kernel | %s |\n", sh("uname", "-sr"))
	fmt.Fprintf(b, "| redis-server | %s |\n", sh("redis-server", "--version"))
	fmt.Fprintf(b, "| redis-benchmark / redis-cli | %s / %s |\n", sh("redis-benchmark", "--version"), sh("redis-cli", "--version"))
	fmt.Fprintf(b, "| celery / kombu / redis-py (/usr/bin/python3) | %s |\n", sh("/usr/bin/python3", "-c", "import celery, kombu, redis; print(celery.__version__, '/', kombu.__version__, '/', redis.__version__)"))
	fmt.Fprintf(b, "| python | %s |\n", sh("/usr/bin/python3", "--version"))
	fmt.Fprintf(b, "| go | %s (%s/%s) |\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(b, "| docker engine | %s |\n", sh("docker", "version", "--format", "{{.Server.Version}}"))
	fmt.Fprintf(b, "\nThe machine is shared (other jobs may run at the same time), so single figures are noisy: read the\n")
	fmt.Fprintf(b, "medians and the min-max spread; ours and the baseline alternate within each benchmark so that drift hits both.\n\n")

	fmt.Fprintf(b, "## Summary\n\n| figure | ours | baseline | ratio ours/baseline (median; paired: median of the per-repetition ratios, min-max) | target |\n|---|---|---|---|---|\n")
	for _, sec := range sections {
		for _, r := range by[sec] {
			if r.baseline || r.ratio == 0 || strings.HasPrefix(r.variant, "redis-cli") { // another baseline, in the section table
				continue
			}
			fmt.Fprintf(b, "| %s: %s | %s | %s | %s | %s |\n", shortSection(sec), r.metric, r.variant, r.baseName, ratioText(r, true), verdict(r))
		}
	}
	fmt.Fprintf(b, "\n")
	for _, sec := range sections {
		fmt.Fprintf(b, "## %s\n\n", sec)
		fmt.Fprintf(b, "| metric | variant | n | median | min | max | ratio ours/baseline |\n|---|---|---|---|---|---|---|\n")
		for _, r := range by[sec] {
			ratio := ""
			switch {
			case r.baseline:
				ratio = "baseline"
			case r.ratio != 0:
				ratio = ratioText(r, false)
				if v := verdict(r); v != "" {
					ratio += " (" + v + ")"
				}
			}
			fmt.Fprintf(b, "| %s (%s, %s is better) | %s | %d | %s | %s | %s | %s |\n", r.metric, r.unit, r.better, r.variant, r.n, num(r.med), num(r.lo), num(r.hi), ratio)
		}
		fmt.Fprintf(b, "\n")
		for _, n := range notes[sec] {
			fmt.Fprintf(b, "- %s\n", n)
		}
		if sec == sectionProgram {
			fmt.Fprintf(b, "- `go test -run '^$' -bench 'Program$' -benchmem -count N ./tests/bench`: each -count is one repetition; both benchmarks run the real `tests/declared` harness (mocks, the real `Pulumi.prod.yaml`).\n")
		}
		fmt.Fprintf(b, "\n")
	}
	var missing []string
	for sec, ns := range notes {
		if _, ok := by[sec]; !ok {
			for _, n := range ns {
				missing = append(missing, fmt.Sprintf("%s: %s", sec, n))
			}
		}
	}
	sort.Strings(missing)
	missing = append(missing, skipped...)
	if len(missing) > 0 {
		fmt.Fprintf(b, "## Not measured in this run\n\n")
		for _, m := range missing {
			fmt.Fprintf(b, "- %s\n", m)
		}
		fmt.Fprintf(b, "\n")
	}
}

func shortSection(s string) string {
	if i := strings.IndexByte(s, ' '); i > 0 {
		return strings.TrimSuffix(s[:i], ".")
	}
	return s
}
