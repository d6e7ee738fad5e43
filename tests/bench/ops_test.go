package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

const (
	sectionAnalyze = "3a. redis-ops analyze vs redis-cli --memkeys / --bigkeys"
	sectionBackup  = "3b. redis-ops backup vs redis-cli --rdb + sha256sum"
)

// buildOps builds deployment/cmd/redis-ops into a temp dir and returns the binary's path.
func buildOps(b testing.TB) string {
	b.Helper()
	root, err := stacks.FindRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "redis-ops")
	cmd := exec.Command("go", "build", "-o", bin, "./deployment/cmd/redis-ops")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build redis-ops: %v\n%s", err, out)
	}
	return bin
}

// measured is one process run: wall time, peak RSS and stdout.
type measured struct {
	wall   time.Duration
	rssMiB float64
	stdout string
}

// timeBin is GNU time (Debian package "time"). It measures peak RSS because the rusage of a child
// of this Go process would not do: Go starts children with vfork semantics (CLONE_VM), so the
// child's ru_maxrss starts at this test process's own RSS. GNU time forks from a small process.
const timeBin = "/usr/bin/time"

func requireTime(b testing.TB) {
	b.Helper()
	if _, err := os.Stat(timeBin); err != nil {
		b.Fatalf("%s not found (apt-get install time; bench.sh installs it)", timeBin)
	}
}

// run runs name with args and env (added to the environment) under GNU time and measures it; it
// fails the benchmark when the process fails (the message names the program only: args and env may
// hold a mock password).
func run(b testing.TB, env []string, name string, args ...string) measured {
	b.Helper()
	report := filepath.Join(b.TempDir(), "time")
	cmd := exec.Command(timeBin, append([]string{"-f", "%M", "-o", report, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", filepath.Base(name), firstArg(args), err, lastLines(errb.String(), 10))
	}
	m := measured{wall: wall, stdout: out.String()}
	raw, err := os.ReadFile(report)
	kib, perr := strconv.ParseFloat(strings.TrimSpace(lastLines(string(raw), 1)), 64)
	if err != nil || perr != nil {
		b.Fatalf("GNU time report of %s: %q %v %v", filepath.Base(name), raw, err, perr)
	}
	m.rssMiB = kib / 1024
	return m
}

func firstArg(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// loadMixed adds keys [from, to) of a deterministic mixed keyspace with pipelining: strings, hashes,
// lists, sets and zsets in turn, every second key with a TTL (1 to 2 days, so none expires during the
// run), and every 1000th key a large one (200 elements or a 20 KB string) for the top-N lists.
func loadMixed(b testing.TB, c *redis.Client, from, to int) {
	b.Helper()
	ctx := context.Background()
	const batch = 5000
	rng := rand.New(rand.NewPCG(uint64(from), 42))
	small := strings.Repeat("v", 32)
	big := strings.Repeat("x", 20000)
	for lo := from; lo < to; lo += batch {
		pipe := c.Pipeline()
		for i := lo; i < min(lo+batch, to); i++ {
			key := fmt.Sprintf("bench:%d:%08d", i%5, i)
			n := 3
			if i%1000 == 999 {
				n = 200
			}
			switch i % 5 {
			case 0:
				v := small
				if n > 3 {
					v = big
				}
				pipe.Set(ctx, key, v, 0)
			case 1:
				args := make([]any, 0, 2*n)
				for j := 0; j < n; j++ {
					args = append(args, "f"+strconv.Itoa(j), small)
				}
				pipe.HSet(ctx, key, args...)
			case 2:
				args := make([]any, n)
				for j := range args {
					args[j] = small
				}
				pipe.RPush(ctx, key, args...)
			case 3:
				args := make([]any, n)
				for j := range args {
					args[j] = "m" + strconv.Itoa(j)
				}
				pipe.SAdd(ctx, key, args...)
			case 4:
				zs := make([]redis.Z, n)
				for j := range zs {
					zs[j] = redis.Z{Score: float64(j), Member: "m" + strconv.Itoa(j)}
				}
				pipe.ZAdd(ctx, key, zs...)
			}
			if i%2 == 0 {
				pipe.Expire(ctx, key, 24*time.Hour+time.Duration(rng.IntN(86400))*time.Second)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatalf("load keys %d..: %v", lo, err)
		}
	}
}

// waitPersistenceIdle waits until no BGSAVE or AOF rewrite runs (the declared save points and AOF
// auto-rewrite fire while data is loaded), so that measurements do not overlap a fork.
func waitPersistenceIdle(b testing.TB, c *redis.Client) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		inf, err := c.Info(context.Background(), "persistence").Result()
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(inf, "rdb_bgsave_in_progress:0") && strings.Contains(inf, "aof_rewrite_in_progress:0") &&
			!strings.Contains(inf, "aof_rewrite_scheduled:1") {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Fatal("persistence still busy after 10 minutes")
}

// BenchmarkOpsAnalyze loads BENCH_KEYS (default 1,000,000) mixed keys into a redis-server running the
// declared dev config and compares `redis-ops analyze` with `redis-cli --memkeys` and `--bigkeys` on
// the same data: wall time and peak RSS of each process, BENCH_REPS (default 3) repetitions in
// rotating order. analyze also runs on a tenth of the keys first, to show that its memory does not
// grow with the key count.
func BenchmarkOpsAnalyze(b *testing.B) {
	requireTime(b)
	reps := Reps(b, 3)
	keys := EnvInt(b, "BENCH_KEYS", 1000000)
	opsBin := buildOps(b)
	br := realredis.Start(b, "dev", realredis.Options{})
	ops := br.Client(b, redisconf.OpsUser)
	opsEnv := []string{"REDIS_ADDR=" + br.Addr(), "REDIS_USERNAME=" + redisconf.OpsUser, "REDIS_PASSWORD=" + br.Ops}
	cliEnv := []string{"REDISCLI_AUTH=" + br.Ops}
	cliArgs := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(br.Port()), "--user", redisconf.OpsUser, "--no-auth-warning"}

	analyze := func(want int) measured {
		m := run(b, opsEnv, opsBin, "analyze", "--json")
		var a struct {
			Scanned int64 `json:"scanned"`
		}
		if err := json.Unmarshal([]byte(m.stdout), &a); err != nil || a.Scanned != int64(want) {
			b.Fatalf("redis-ops analyze scanned %d keys (%v), want %d", a.Scanned, err, want)
		}
		return m
	}
	type variant struct {
		name       string
		baseline   bool
		run        func() measured
		wall, rss  []float64
		keys       int
		growthOnly bool
	}
	tenth := keys / 10
	start := time.Now()
	loadMixed(b, ops, 0, tenth)
	waitPersistenceIdle(b, ops)
	small := &variant{name: fmt.Sprintf("redis-ops analyze, %d keys (1/10)", tenth), keys: tenth, growthOnly: true,
		run: func() measured { return analyze(tenth) }}
	for i := 0; i < reps; i++ {
		m := small.run()
		small.wall, small.rss = append(small.wall, m.wall.Seconds()), append(small.rss, m.rssMiB)
	}
	loadMixed(b, ops, tenth, keys)
	waitPersistenceIdle(b, ops)
	if n, err := ops.DBSize(context.Background()).Result(); err != nil || n != int64(keys) {
		b.Fatalf("DBSIZE = %d (%v), want %d", n, err, keys)
	}
	Annotate(b, sectionAnalyze, "%d keys loaded with pipelining in %s (strings, hashes, lists, sets, zsets in turn; half with a TTL; every 1000th key large); "+
		"server: the declared dev redis.conf and ACL file (tests/realredis), clients as the ops user (redis-cli with REDISCLI_AUTH).", keys, time.Since(start).Round(time.Second))

	cli := func(mode string) func() measured {
		return func() measured {
			m := run(b, cliEnv, "redis-cli", append(cliArgs, mode)...)
			if !strings.Contains(m.stdout, fmt.Sprintf("Sampled %d keys", keys)) {
				b.Fatalf("redis-cli %s did not sample %d keys:\n%s", mode, keys, lastLines(m.stdout, 5))
			}
			return m
		}
	}
	vs := []*variant{
		{name: fmt.Sprintf("redis-ops analyze, %d keys", keys), keys: keys, run: func() measured { return analyze(keys) }},
		{name: "redis-cli --memkeys", baseline: true, keys: keys, run: cli("--memkeys")},
		{name: "redis-cli --bigkeys", keys: keys, run: cli("--bigkeys")},
	}
	for i := 0; i < b.N; i++ {
		for rep := 0; rep < reps; rep++ {
			for k := range vs {
				v := vs[(k+rep)%len(vs)]
				m := v.run()
				v.wall, v.rss = append(v.wall, m.wall.Seconds()), append(v.rss, m.rssMiB)
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	for _, v := range vs {
		Record(b, Series{Section: sectionAnalyze, Metric: fmt.Sprintf("wall time, %d keys", keys), Variant: v.name, Unit: "s",
			Better: "lower", Baseline: v.baseline, Target: "<= 1.00", Values: v.wall})
	}
	for _, v := range vs {
		Record(b, Series{Section: sectionAnalyze, Metric: fmt.Sprintf("peak RSS, %d keys", keys), Variant: v.name, Unit: "MiB",
			Better: "lower", Baseline: v.baseline, Values: v.rss})
	}
	Record(b, Series{Section: sectionAnalyze, Metric: "redis-ops analyze peak RSS: key count x10", Variant: vs[0].name, Unit: "MiB",
		Better: "lower", Target: "about 1 (bounded)", Values: vs[0].rss})
	Record(b, Series{Section: sectionAnalyze, Metric: "redis-ops analyze peak RSS: key count x10", Variant: small.name, Unit: "MiB",
		Better: "lower", Baseline: true, Values: small.rss})
	Record(b, Series{Section: sectionAnalyze, Metric: "redis-ops analyze wall time: key count x10", Variant: vs[0].name, Unit: "s",
		Better: "lower", Values: vs[0].wall})
	Record(b, Series{Section: sectionAnalyze, Metric: "redis-ops analyze wall time: key count x10", Variant: small.name, Unit: "s",
		Better: "lower", Baseline: true, Values: small.wall})
	Annotate(b, sectionAnalyze, "Peak RSS: maximum resident set of the process, from GNU time (/usr/bin/time -f %%M); wall time from start to exit. "+
		"redis-ops analyze: SCAN COUNT 1000 + one pipeline of TYPE, MEMORY USAGE, PTTL per batch, JSON output; redis-cli: its built-in --memkeys / --bigkeys scans. %d repetitions, rotating order. "+
		"Target: analyze no slower than redis-cli, and its RSS about the same at 1/10 of the keys (ratio near 1.0).", reps)
}

// fillBytes writes about mb MiB of incompressible string values (64 KiB each) with pipelining.
func fillBytes(b testing.TB, c *redis.Client, mb int) int {
	b.Helper()
	ctx := context.Background()
	const size = 64 << 10
	pool := make([]byte, 32<<20) // values are windows of a random pool, 64 KiB apart: LZF finds nothing
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range pool {
		pool[i] = byte(rng.Uint32())
	}
	n := mb << 20 / size
	for lo := 0; lo < n; lo += 64 {
		pipe := c.Pipeline()
		for i := lo; i < min(lo+64, n); i++ {
			off := (i * 4099) % (len(pool) - size)
			pipe.Set(ctx, "blob:"+strconv.Itoa(i), pool[off:off+size], 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatalf("fill %d MiB: %v", mb, err)
		}
	}
	return n
}

// BenchmarkOpsBackup fills a redis-server running the declared dev config (maxmemory lifted so the
// data fits) with BENCH_BACKUP_MB (default 1024) MiB and compares both sources of `redis-ops backup`
// (--source datadir: BGSAVE, copy from the data dir; --source network: SYNC over the connection, as
// redis-cli --rdb; both with RDB checks, MD5 + SHA256, manifest) with `redis-cli --rdb FILE` followed by
// `sha256sum FILE`, by wall time and peak RSS, BENCH_REPS (default 3) repetitions in rotating order.
// The server's repl-diskless-sync-delay (Redis default 5 s, not set by our config) delays every
// transfer over the connection, so the network variants are measured twice: as declared, and with
// the delay set to 0 (CONFIG SET before each run of such a variant, back to 5 s before the others),
// each against redis-cli --rdb under the same delay.
func BenchmarkOpsBackup(b *testing.B) {
	requireTime(b)
	reps := Reps(b, 3)
	mb := EnvInt(b, "BENCH_BACKUP_MB", 1024)
	opsBin := buildOps(b)
	br := realredis.Start(b, "dev", realredis.Options{Args: []string{"--maxmemory", strconv.Itoa(2*mb+256) + "mb"}})
	ops := br.Client(b, redisconf.OpsUser)
	ctx := context.Background()
	declaredDelay, err := ops.ConfigGet(ctx, "repl-diskless-sync-delay").Result()
	if err != nil {
		b.Fatal(err)
	}
	diskless, _ := ops.ConfigGet(ctx, "repl-diskless-sync").Result()
	start := time.Now()
	keys := fillBytes(b, ops, mb)
	waitPersistenceIdle(b, ops)
	Annotate(b, sectionBackup, "%d MiB in %d incompressible 64 KiB strings, loaded in %s; server: the declared dev redis.conf and ACL file with --maxmemory %dmb appended "+
		"(the dev default, 512mb, cannot hold the dataset); repl-diskless-sync %s, repl-diskless-sync-delay %s s as declared (Redis defaults).",
		mb, keys, time.Since(start).Round(time.Second), 2*mb+256, diskless["repl-diskless-sync"], declaredDelay["repl-diskless-sync-delay"])

	outDir := b.TempDir()
	opsEnv := []string{"REDIS_ADDR=" + br.Addr(), "REDIS_USERNAME=" + redisconf.OpsUser, "REDIS_PASSWORD=" + br.Ops}
	type variant struct {
		name, metric string
		baseline     bool
		delay        string // repl-diskless-sync-delay during the run
		run          func() measured
		wall, rss    []float64
	}
	clean := func() {
		entries, _ := os.ReadDir(outDir)
		for _, e := range entries {
			os.RemoveAll(filepath.Join(outDir, e.Name()))
		}
	}
	opsBackup := func(source string) func() measured {
		return func() measured {
			m := run(b, opsEnv, opsBin, "backup", "--dir", outDir, "--retention", "0", "--source", source)
			if !strings.Contains(m.stdout, fmt.Sprintf("keys=%d", keys)) || !strings.Contains(m.stdout, "source="+source) {
				b.Fatalf("redis-ops backup --source %s: %s", source, m.stdout)
			}
			return m
		}
	}
	cliRDB := func() measured {
		file := filepath.Join(outDir, "dump.rdb")
		m1 := run(b, []string{"REDISCLI_AUTH=" + br.Ops}, "redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(br.Port()),
			"--user", redisconf.OpsUser, "--no-auth-warning", "--rdb", file)
		m2 := run(b, nil, "sha256sum", file)
		return measured{wall: m1.wall + m2.wall, rssMiB: max(m1.rssMiB, m2.rssMiB)}
	}
	declared := fmt.Sprintf("wall time, %d MiB dataset", mb)
	noDelay := fmt.Sprintf("wall time, %d MiB dataset, repl-diskless-sync-delay 0", mb)
	d := declaredDelay["repl-diskless-sync-delay"]
	vs := []*variant{
		{name: "redis-ops backup --source datadir", metric: declared, delay: d, run: opsBackup("datadir")},
		{name: "redis-ops backup --source network", metric: declared, delay: d, run: opsBackup("network")},
		{name: "redis-cli --rdb + sha256sum", metric: declared, baseline: true, delay: d, run: cliRDB},
		{name: "redis-ops backup --source network", metric: noDelay, delay: "0", run: opsBackup("network")},
		{name: "redis-cli --rdb + sha256sum", metric: noDelay, baseline: true, delay: "0", run: cliRDB},
	}
	var sizes []string
	for i := 0; i < b.N; i++ {
		for rep := 0; rep < reps; rep++ {
			for k := range vs {
				v := vs[(k+rep)%len(vs)]
				clean()
				waitPersistenceIdle(b, ops)
				if err := ops.ConfigSet(ctx, "repl-diskless-sync-delay", v.delay).Err(); err != nil {
					b.Fatal(err)
				}
				m := v.run()
				v.wall, v.rss = append(v.wall, m.wall.Seconds()), append(v.rss, m.rssMiB)
				if rep == 0 && v.metric == declared {
					sizes = append(sizes, v.name+": "+dirSize(outDir))
				}
			}
		}
	}
	clean()
	if err := ops.ConfigSet(ctx, "repl-diskless-sync-delay", d).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(0, "ns/op")
	for _, metric := range []string{declared, noDelay} {
		for _, v := range vs {
			if v.metric == metric {
				Record(b, Series{Section: sectionBackup, Metric: metric, Variant: v.name, Unit: "s",
					Better: "lower", Baseline: v.baseline, Values: v.wall})
			}
		}
	}
	for _, v := range vs[:3] {
		Record(b, Series{Section: sectionBackup, Metric: fmt.Sprintf("peak RSS, %d MiB dataset", mb), Variant: v.name, Unit: "MiB",
			Better: "lower", Baseline: v.baseline, Values: v.rss})
	}
	Annotate(b, sectionBackup, "%d repetitions, rotating order over the %d variants; output files deleted between runs. Files written: %s. "+
		"redis-ops backup also verifies the file (magic, EOF marker, CRC64, redis-check-rdb) and writes MD5 + SHA256 and a manifest. "+
		"--source datadir: BGSAVE, then a copy from the data dir; --source network and redis-cli --rdb: REPLCONF + SYNC, the server forks a save for the connection and streams it "+
		"after repl-diskless-sync-delay (both wait for it; the rows with delay 0 show the transfer alone). "+
		"redis-cli + sha256sum: the sum of both wall times, the larger of both peak RSS (GNU time).",
		reps, len(vs), strings.Join(sizes, "; "))
}

func dirSize(dir string) string {
	var total int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			total += fi.Size()
		}
	}
	return fmt.Sprintf("%.1f MiB", float64(total)/(1<<20))
}
