package bench

import (
	"context"
	"encoding/csv"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/realredis"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

const sectionRedis = "1. Broker throughput (redis-benchmark)"

const sectionDurability = "1b. The price of durability (redis-benchmark, stock servers)"

// target is one server redis-benchmark runs against.
type target struct {
	name     string
	port     int
	user, pw string // empty for the stock servers
}

// Variants of the throughput benchmark.
const (
	stockPersistent = "stock redis-server, same persistence (AOF everysec + the same save points, no auth)"
	stockDefaults   = "stock redis-server (defaults: no AOF, no auth)"
	// stockTwin is a second, identical baseline server: its ratio to the baseline (A/A) is the
	// machine's noise floor, the spread a ratio of ours can show with no difference at all.
	stockTwin = "A/A: a second stock redis-server with the same persistence (the noise floor)"
)

// BenchmarkRedisThroughput runs redis-benchmark (SET, GET, LPUSH, RPOP, then the same pipelined with
// -P 16) against a redis-server with the declared dev config, one with the declared prod config (both
// through the image's entrypoint with the declared redis.conf and ACL file, tests/realredis), a stock
// redis-server with the same persistence (the baseline: ours/it is the price of our ACL, config and
// entrypoint alone) and a stock redis-server with Redis's defaults (stock with persistence / it is the
// price of durability, its own section) and a twin of the baseline (A/A: the machine's noise floor),
// BENCH_REPS times in rotating order; the report pairs each repetition with the baseline's. Every server runs on
// CPU 0, redis-benchmark on CPU 1, so the client does not compete with the server it measures.
//
// Sizes: BENCH_REQUESTS (default 50000) per unpipelined test, 10x that pipelined.
func BenchmarkRedisThroughput(b *testing.B) {
	if _, err := exec.LookPath("redis-benchmark"); err != nil {
		b.Skip("redis-benchmark not installed (apt-get install redis-tools)")
	}
	reps := Reps(b, 5)
	requests := EnvInt(b, "BENCH_REQUESTS", 50000)
	dev := realredis.Start(b, "dev", realredis.Options{})
	prod := realredis.Start(b, "prod", realredis.Options{})
	persistent := redistest.Start(b, redistest.Options{Args: persistentArgs()})
	twin := redistest.Start(b, redistest.Options{Args: persistentArgs()})
	stock := redistest.Start(b, redistest.Options{})
	targets := []target{
		{name: "ours: declared dev config", port: dev.Port(), user: redisconf.OpsUser, pw: dev.Ops},
		{name: "ours: declared prod config", port: prod.Port(), user: redisconf.OpsUser, pw: prod.Ops},
		{name: stockTwin, port: twin.Port()},
		{name: stockPersistent, port: persistent.Port()},
		{name: stockDefaults, port: stock.Port()},
	}
	for _, tg := range targets {
		pinServer(b, tg.port, serverCPU)
	}
	tests := []string{"SET", "GET", "LPUSH", "RPOP"}
	// values[target][metric] = one value per repetition
	values := map[string]map[string][]float64{}
	for _, tg := range targets {
		values[tg.name] = map[string][]float64{}
	}
	for i := 0; i < b.N; i++ {
		for rep := 0; rep < reps; rep++ {
			for k := range targets {
				tg := targets[(k+rep)%len(targets)]
				for _, pipelined := range []bool{false, true} {
					n, suffix := requests, ""
					args := []string{"-t", "set,get,lpush,rpop"}
					if pipelined {
						n, suffix = 10*requests, " (-P 16)"
						args = append(args, "-P", "16")
					}
					settle(b, tg)
					for test, rps := range redisBenchmark(b, tg, n, args...) {
						values[tg.name][test+suffix] = append(values[tg.name][test+suffix], rps)
					}
				}
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	for _, pipelined := range []string{"", " (-P 16)"} {
		for _, test := range tests {
			metric := test + pipelined
			for _, tg := range targets[:4] {
				target := ">= 0.95"
				if tg.name == stockTwin {
					target = ""
				}
				Record(b, Series{Section: sectionRedis, Metric: metric + " requests/s", Variant: tg.name,
					Unit: "req/s", Better: "higher", Baseline: tg.name == stockPersistent, Target: target, Paired: true, Values: values[tg.name][metric]})
			}
			for _, tg := range targets[3:] {
				Record(b, Series{Section: sectionDurability, Metric: metric + " requests/s", Variant: tg.name,
					Unit: "req/s", Better: "higher", Baseline: tg.name == stockDefaults, Paired: true, Values: values[tg.name][metric]})
			}
		}
	}
	Annotate(b, sectionRedis, "taskset -c %d redis-benchmark -h 127.0.0.1 -p PORT -q --csv -t set,get,lpush,rpop -n %d (50 clients, 3-byte values), and the same with -P 16 -n %d; %d repetitions, targets in rotating order; every server pinned to CPU %d (taskset -a -p); before each call, on every server alike, SAVE and (AOF on) BGREWRITEAOF run to the end, so that no snapshot or rewrite forks during a measurement. "+
		"Ours: the declared redis.conf and users.acl run through deployment/docker/redis/docker-entrypoint.sh (AOF everysec, RDB save points, ACL auth as the ops user, tests/realredis); "+
		"redis-benchmark 7.0 has no password env variable, so it gets the mock password with -a on this throwaway local server. "+
		"Baseline: a stock redis-server with the same persistence (--appendonly yes --appendfsync everysec --save \"%s\"), no auth: the ratio is the price of our ACL, config and entrypoint alone. Target ratio >= 0.95. "+
		"A/A: a second server identical to the baseline, measured in the same rotation: its ratio and spread are what this machine's noise alone produces. "+
		"Where a ratio of ours is near the target, section 1c (instructions, deterministic) says what our config costs per request.",
		clientCPU, requests, 10*requests, reps, serverCPU, savePoints())
	Annotate(b, sectionDurability, "The same runs: the stock server with our persistence against a stock server with Redis's defaults (no AOF; RDB save points 3600 1 300 100 60 10000). "+
		"A ratio below 1 is what AOF everysec costs; we pay it on purpose (a broker must not lose queued tasks).")
}

// settle runs now, on every server alike, the background persistence work that would otherwise start
// at a random point of the next measurement and fork a child onto the server's CPU: an RDB snapshot
// (SAVE resets the save points' clock, and the shortest, 60 s, outlasts one redis-benchmark call) and,
// with AOF on, a rewrite (the AOF one call appends stays below auto-aof-rewrite-min-size, 64 MB). It
// was the largest source of the spread between repetitions of the same server (section 1 before
// 2026-12-05: 31k to 85k SET/s on one server); what fsync everysec and the AOF writes cost stays in.
func settle(b *testing.B, tg target) {
	b.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(tg.port), Username: tg.user, Password: tg.pw})
	defer c.Close()
	ctx := context.Background()
	if err := c.Save(ctx).Err(); err != nil {
		b.Fatalf("SAVE on %s: %v", tg.name, err)
	}
	if info := c.Info(ctx, "persistence").Val(); !strings.Contains(info, "aof_enabled:1") {
		return
	}
	if err := c.BgRewriteAOF(ctx).Err(); err != nil {
		b.Fatalf("BGREWRITEAOF on %s: %v", tg.name, err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		info := c.Info(ctx, "persistence").Val()
		if strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("AOF rewrite on %s still running after a minute", tg.name)
		}
	}
}

// CPUs the servers and redis-benchmark are pinned to (2-core machines: one each).
const (
	serverCPU = 0
	clientCPU = 1
)

// persistentArgs are the redis-server arguments of the stock baseline with our persistence: AOF
// everysec with an RDB preamble and the declared save points, nothing else.
func persistentArgs() []string {
	return []string{"--appendonly", "yes", "--appendfsync", redisconf.Defaults().AppendFsync,
		"--aof-use-rdb-preamble", "yes", "--save", savePoints()}
}

// savePoints are the declared RDB save points as redis-server's --save takes them.
func savePoints() string {
	var points []string
	for _, p := range redisconf.Defaults().Save {
		points = append(points, strconv.Itoa(p.Seconds), strconv.Itoa(p.Changes))
	}
	return strings.Join(points, " ")
}

// pinServer pins every thread of the redis-server listening on port to cpu.
func pinServer(b *testing.B, port, cpu int) {
	b.Helper()
	pid := serverPID(b, port)
	if out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(cpu), pid).CombinedOutput(); err != nil {
		b.Fatalf("taskset redis-server %s: %v: %s", pid, err, out)
	}
}

// serverPID is the process id of the redis-server listening on port (started directly, through the
// entrypoint, or under valgrind).
func serverPID(b *testing.B, port int) string {
	b.Helper()
	out, err := exec.Command("pgrep", "-f", "^redis-server .*:"+strconv.Itoa(port)+"( |$)").Output()
	if err != nil {
		out, err = exec.Command("pgrep", "-f", "redis-server.*--port "+strconv.Itoa(port)+"( |$)").Output()
	}
	pids := strings.Fields(string(out))
	if err != nil || len(pids) != 1 {
		b.Fatalf("redis-server on port %d: want one process, found %q (%v)", port, pids, err)
	}
	return pids[0]
}

// testsOf is the redis-benchmark tests that args select with -t.
func testsOf(args []string) []string {
	for i, a := range args {
		if a == "-t" && i+1 < len(args) {
			return strings.Split(strings.ToUpper(args[i+1]), ",")
		}
	}
	return nil
}

// redisBenchmark runs redis-benchmark once, on clientCPU, and returns requests/s by test name.
func redisBenchmark(b *testing.B, tg target, n int, extra ...string) map[string]float64 {
	b.Helper()
	args := []string{"-c", strconv.Itoa(clientCPU), "redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(tg.port), "-q", "--csv", "-n", strconv.Itoa(n)}
	if tg.user != "" {
		// A throwaway local server with the mock password of tests/declared (see the note).
		args = append(args, "--user", tg.user, "-a", tg.pw)
	}
	args = append(args, extra...)
	cmd := exec.Command("taskset", args...)
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("redis-benchmark against %s: %v", tg.name, err) // no argv in the message: it holds -a
	}
	rows, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
	if err != nil {
		b.Fatalf("redis-benchmark CSV from %s: %v", tg.name, err)
	}
	res := map[string]float64{}
	for _, r := range rows {
		if len(r) < 2 || r[0] == "test" {
			continue
		}
		name := r[0]
		if i := strings.IndexByte(name, ' '); i > 0 { // "LPUSH (needed to benchmark LRANGE)"
			name = name[:i]
		}
		v, err := strconv.ParseFloat(r[1], 64)
		if err != nil {
			b.Fatalf("redis-benchmark CSV from %s: %q", tg.name, r)
		}
		res[name] = v
	}
	if want := testsOf(extra); len(res) != len(want) {
		b.Fatalf("redis-benchmark against %s: got %v, want %v (auth or ACL failure?)", tg.name, res, want)
	}
	return res
}
