package bench

import (
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/realredis"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

const sectionCelery = "2. Celery enqueue and round trip"

// declaredEnv returns the email-service container's env as the dev program declares it, with the
// broker and result-backend host moved from the container network (redis:6379) to port on this host.
// (The same move as tests/celerystack, whose helper is test-only.)
func declaredEnv(b testing.TB, port int) map[string]string {
	b.Helper()
	r, err := declared.Run("dev", declared.Options{})
	if err != nil {
		b.Fatal(err)
	}
	c, ok := r.Get(declared.ContainerType, "email-service-container")
	if !ok {
		b.Fatal("the program declares no email-service-container")
	}
	envs := c.Inputs["envs"]
	if envs.IsSecret() {
		envs = envs.SecretValue().Element
	}
	env := map[string]string{}
	for _, kv := range envs.ArrayValue() {
		k, v, _ := strings.Cut(kv.StringValue(), "=")
		env[k] = v
	}
	for _, key := range []string{"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"} {
		if !strings.Contains(env[key], "@redis:6379/") {
			b.Fatalf("%s does not point at redis:6379", key)
		}
		env[key] = strings.Replace(env[key], "@redis:6379/", "@127.0.0.1:"+strconv.Itoa(port)+"/", 1)
	}
	return env
}

// BenchmarkCeleryThroughput measures enqueue and full round-trip rates (tasks/s) of the reference
// email-service worker and client (tests/celerytest, Debian python3-celery) with the env the dev
// program declares, through a redis-server running the declared dev redis.conf and ACL file vs a stock
// redis-server with the same persistence (AOF everysec and the save points, no auth; only the URLs
// changed), so that the ratio is our ACL and config alone, paired by repetition, and a twin of the
// stock server (A/A: the noise floor of the same measurement). BENCH_CELERY_TASKS (default 500) tasks
// per repetition, BENCH_REPS repetitions rotating the servers.
//
// Where the rates go is measured in the same repetitions: the CPU time each redis-server's threads
// spent per task (from /proc/PID/task/*/schedstat, nanoseconds) and the whole machine's busy CPU per
// task (/proc/stat: client, worker and server), so a rate ratio below the target can be told apart
// from our server doing more work.
//
// tests/celerytest's BenchmarkThroughput compares Celery settings (ours vs Celery's defaults) on one
// broker; this one keeps the Celery settings and compares the servers.
func BenchmarkCeleryThroughput(b *testing.B) {
	celerytest.Require(b)
	reps := Reps(b, 5)
	tasks := EnvInt(b, "BENCH_CELERY_TASKS", 500)

	ours := realredis.Start(b, "dev", realredis.Options{})
	oursEnv := declaredEnv(b, ours.Port())
	oursEnv["CELERY_LOG_LEVEL"] = "warning" // per-task log lines would dominate
	// stockEnv is oursEnv pointed at a stock server, without auth.
	stockEnv := func(addr string) map[string]string {
		env := maps.Clone(oursEnv)
		u := (&url.URL{Scheme: "redis", Host: addr, Path: "/0"}).String()
		env["CELERY_BROKER_URL"], env["CELERY_RESULT_BACKEND"] = u, u
		return env
	}
	stock := redistest.Start(b, redistest.Options{Args: persistentArgs()})
	twin := redistest.Start(b, redistest.Options{Args: persistentArgs()})

	type variant struct {
		target
		env                  map[string]string
		enq, rt, server, all []float64
	}
	vs := []*variant{
		{target: target{name: "ours: declared dev config + ACL", port: ours.Port(), user: redisconf.OpsUser, pw: ours.Ops}, env: oursEnv},
		{target: target{name: stockPersistent, port: stock.Port()}, env: stockEnv(stock.Addr())},
		{target: target{name: stockTwin, port: twin.Port()}, env: stockEnv(twin.Addr())},
	}
	for _, v := range vs {
		celerytest.StartWorker(b, v.env) // stopped at cleanup
		celerytest.Send(b, v.env, 20, time.Minute)
	}
	perTask := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(tasks) }
	for i := 0; i < b.N; i++ {
		for rep := 0; rep < reps; rep++ {
			for k := range vs {
				v := vs[(k+rep)%len(vs)]
				settle(b, v.target)
				pid := serverPID(b, v.port)
				server0, all0 := threadsCPU(b, pid), machineBusy(b)
				res := celerytest.Send(b, v.env, tasks, 5*time.Minute)
				server1, all1 := threadsCPU(b, pid), machineBusy(b)
				if res.Completed != tasks {
					b.Fatalf("%s: %d of %d completed (failed %d, pending %d)", v.name, res.Completed, tasks, res.Failed, res.Pending)
				}
				v.enq = append(v.enq, res.EnqueuePerSecond())
				v.rt = append(v.rt, res.RoundtripPerSecond())
				v.server = append(v.server, perTask(server1-server0))
				v.all = append(v.all, perTask(all1-all0))
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	record := func(metric, unit, better, target string, values func(*variant) []float64) {
		for _, v := range vs {
			t := target
			if v.name == stockTwin {
				t = ""
			}
			Record(b, Series{Section: sectionCelery, Metric: metric, Variant: v.name, Unit: unit,
				Better: better, Baseline: v.name == stockPersistent, Target: t, Paired: true, Values: values(v)})
		}
	}
	record("enqueue tasks/s", "tasks/s", "higher", ">= 0.90", func(v *variant) []float64 { return v.enq })
	record("round-trip tasks/s", "tasks/s", "higher", ">= 0.90", func(v *variant) []float64 { return v.rt })
	record("redis-server CPU per task", "ms", "lower", "<= 1.05", func(v *variant) []float64 { return v.server })
	record("machine CPU per task (client, worker, server)", "ms", "lower", "", func(v *variant) []float64 { return v.all })
	server, _, _ := Stats(vs[0].server)
	all, _, _ := Stats(vs[0].all)
	Annotate(b, sectionCelery, "%d send_email tasks per repetition (python3 -m emailworker.client send), %d repetitions, servers in rotating order, each settled first as in section 1; one worker per server "+
		"(the declared env: concurrency 4, prefetch 1, acks_late, json), log level warning; nothing pinned (client, worker and server share the machine's cores). Round trip = enqueue, execute, result stored and read back. "+
		"Baseline: a stock redis-server with the same persistence as ours (--appendonly yes --appendfsync everysec --save \"%s\"), no auth. Target ratio >= 0.90. "+
		"A/A: a second stock server identical to the baseline, with its own worker: the noise floor of the rates. "+
		"CPU per task over the same Send calls: redis-server = the sum over its threads of /proc/PID/task/TID/schedstat (ns on CPU); machine = busy jiffies of /proc/stat (every process). "+
		"Ours: the server is %.0f%% of the machine's CPU per task (%.3f of %.2f ms): while the two cores are the limit, x%% more server CPU per task costs the rates about %.2fx%%.",
		tasks, reps, savePoints(), 100*server/all, server, all, server/all)
}

// threadsCPU is the CPU time all threads of process pid have run so far (/proc/PID/task/*/schedstat).
func threadsCPU(b *testing.B, pid string) time.Duration {
	b.Helper()
	stats, err := filepath.Glob("/proc/" + pid + "/task/*/schedstat")
	if err != nil || len(stats) == 0 {
		b.Fatalf("schedstat of process %s: %v (no threads found)", pid, err)
	}
	var total time.Duration
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // a thread that ended
		}
		f := strings.Fields(string(data))
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatalf("%s: %q", path, data)
		}
		total += time.Duration(ns)
	}
	return total
}

// machineBusy is the CPU time every core of the machine has spent busy (not idle, not waiting for
// I/O) since boot, from /proc/stat.
func machineBusy(b *testing.B) time.Duration {
	b.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %q", line)
		}
		if i != 3 && i != 4 && i < 8 { // user..steal, without idle and iowait (guest is in user)
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / userHZ
}

// userHZ is the unit of /proc/stat (USER_HZ, 100 on Linux).
const userHZ = 100
