package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/realredis"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

const sectionInstructions = "1c. Server instructions per request (callgrind, deterministic)"

// BenchmarkRedisInstructions counts the instructions each redis-server executes per request
// (valgrind --tool=callgrind, all threads) for the same redis-benchmark workloads as
// BenchmarkRedisThroughput, against the same three servers: ours with the declared dev and prod
// configs and the stock server with the same persistence (the baseline). Instruction counts do not
// depend on what else the machine is doing, so this is the figure that says whether a throughput ratio
// below 0.95 is our overhead or the machine's noise; the callgrind files it leaves (BENCH_CALLGRIND_DIR,
// one dump per server and test) say where the instructions go (callgrind_annotate).
//
// Sizes: BENCH_CALLGRIND_REQUESTS (default 20000) per test; counters are zeroed after the server is
// ready and read right after redis-benchmark returns.
func BenchmarkRedisInstructions(b *testing.B) {
	for _, tool := range []string{"valgrind", "callgrind_control", "redis-benchmark", "redis-server"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s not installed (apt-get install valgrind redis-tools redis-server)", tool)
		}
	}
	requests := EnvInt(b, "BENCH_CALLGRIND_REQUESTS", 20000)
	outDir := os.Getenv("BENCH_CALLGRIND_DIR")
	if outDir == "" {
		outDir = realredis.SharedDir(b, 0o777) // the redis user writes the dumps
	}
	wrapperDir := callgrindWrapper(b, outDir)
	env := []string{"PATH=" + wrapperDir + ":" + os.Getenv("PATH")}
	timeout := redistest.ReadyTimeout
	redistest.ReadyTimeout = 60 * time.Second // valgrind starts slowly
	defer func() { redistest.ReadyTimeout = timeout }()

	dev := realredis.Start(b, "dev", realredis.Options{Env: env})
	prod := realredis.Start(b, "prod", realredis.Options{Env: env})
	persistent := redistest.Start(b, redistest.Options{Args: persistentArgs(), Entrypoint: filepath.Join(wrapperDir, "redis-server")})
	targets := []target{
		{name: "ours: declared dev config", port: dev.Port(), user: redisconf.OpsUser, pw: dev.Ops},
		{name: "ours: declared prod config", port: prod.Port(), user: redisconf.OpsUser, pw: prod.Ops},
		{name: stockPersistent, port: persistent.Port()},
	}
	for i := 0; i < b.N; i++ {
		for _, pipeline := range []string{"1", "16"} {
			for _, test := range []string{"SET", "GET", "LPUSH", "RPOP"} {
				metric := test
				if pipeline != "1" {
					metric += " (-P " + pipeline + ")"
				}
				for _, tg := range targets {
					pid := serverPID(b, tg.port)
					callgrindControl(b, "--zero", pid)
					redisBenchmark(b, tg, requests, "-t", strings.ToLower(test), "-P", pipeline)
					ir := callgrindTotal(b, pid)
					callgrindControl(b, "--dump="+strings.ReplaceAll(metric, " ", "_"), pid)
					Record(b, Series{Section: sectionInstructions, Metric: metric + " instructions per request", Variant: tg.name,
						Unit: "instr", Better: "lower", Baseline: tg.name == stockPersistent, Target: "<= 1.05", Values: []float64{ir / float64(requests)}})
				}
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	Annotate(b, sectionInstructions, "valgrind --tool=callgrind on each redis-server (every thread), counters zeroed with callgrind_control --zero, "+
		"then redis-benchmark -n %d -t TEST (50 clients, connections included), unpipelined and with -P 16, then the counters read: instructions / requests. "+
		"The same three servers as section 1 (ours through the image's entrypoint with the declared files). One run each: the count does not depend on machine load. "+
		"Dumps per server and test for callgrind_annotate: BENCH_CALLGRIND_DIR=DIR make bench.", requests)
}

// callgrindWrapper writes a redis-server in a new directory that runs the real one under callgrind,
// writing its dumps into outDir; the entrypoint finds it first on PATH.
func callgrindWrapper(b *testing.B, outDir string) string {
	b.Helper()
	real, err := exec.LookPath("redis-server")
	if err != nil {
		b.Fatal(err)
	}
	dir := realredis.SharedDir(b, 0o755)
	if err := os.MkdirAll(outDir, 0o777); err != nil {
		b.Fatal(err)
	}
	_ = os.Chmod(outDir, 0o777) // the entrypoint runs redis-server as the redis user
	script := fmt.Sprintf("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/callgrind.%%p %s \"$@\"\n", outDir, real)
	if err := os.WriteFile(filepath.Join(dir, "redis-server"), []byte(script), 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

// callgrindControl runs callgrind_control with action against pid, as the user that owns pid (vgdb
// talks to the process through FIFOs only its owner opens; run as root against the redis user's
// process it waits forever) and within a minute.
func callgrindControl(b *testing.B, action, pid string) string {
	b.Helper()
	args := []string{"callgrind_control", action, pid}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/"+pid, &st); err != nil {
		b.Fatalf("callgrind_control: process %s: %v", pid, err)
	}
	if os.Geteuid() == 0 && st.Uid != 0 {
		args = append([]string{"setpriv", fmt.Sprintf("--reuid=%d", st.Uid), fmt.Sprintf("--regid=%d", st.Gid), "--clear-groups"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		b.Fatalf("callgrind_control %s %s: %v: %s", action, pid, err, out)
	}
	return string(out)
}

var callgrindThread = regexp.MustCompile(`(?m)^\s*Th\s+\d+\s+([\d,]+)\s*$`)

// callgrindTotal is the sum over threads of the instructions counted since the last zero.
func callgrindTotal(b *testing.B, pid string) float64 {
	b.Helper()
	out := callgrindControl(b, "-e", pid)
	var total float64
	rows := callgrindThread.FindAllStringSubmatch(out, -1)
	for _, m := range rows {
		v, err := strconv.ParseFloat(strings.ReplaceAll(m[1], ",", ""), 64)
		if err != nil {
			b.Fatalf("callgrind_control -e %s: %q", pid, m[0])
		}
		total += v
	}
	if len(rows) == 0 {
		b.Fatalf("callgrind_control -e %s: no thread totals in %q", pid, out)
	}
	return total
}
