package bench

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

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
// changed), so that the ratio is our ACL and config alone, paired by repetition. BENCH_CELERY_TASKS (default 500) tasks per
// repetition, BENCH_REPS repetitions alternating the two servers.
//
// tests/celerytest's BenchmarkThroughput compares Celery settings (ours vs Celery's defaults) on one
// broker; this one keeps the Celery settings and compares the servers.
func BenchmarkCeleryThroughput(b *testing.B) {
	celerytest.Require(b)
	reps := Reps(b, 5)
	tasks := EnvInt(b, "BENCH_CELERY_TASKS", 500)

	ours := realredis.Start(b, "dev", realredis.Options{})
	oursEnv := declaredEnv(b, ours.Port())
	stock := redistest.Start(b, redistest.Options{Args: persistentArgs()})
	stockEnv := map[string]string{}
	for k, v := range oursEnv {
		stockEnv[k] = v
	}
	stockURL := (&url.URL{Scheme: "redis", Host: stock.Addr(), Path: "/0"}).String()
	stockEnv["CELERY_BROKER_URL"], stockEnv["CELERY_RESULT_BACKEND"] = stockURL, stockURL
	for _, env := range []map[string]string{oursEnv, stockEnv} {
		env["CELERY_LOG_LEVEL"] = "warning" // per-task log lines would dominate
	}

	type variant struct {
		name     string
		env      map[string]string
		baseline bool
		enq, rt  []float64
	}
	vs := []*variant{
		{name: "ours: declared dev config + ACL", env: oursEnv},
		{name: stockPersistent, env: stockEnv, baseline: true},
	}
	for _, v := range vs {
		celerytest.StartWorker(b, v.env) // stopped at cleanup
		celerytest.Send(b, v.env, 20, time.Minute)
	}
	for i := 0; i < b.N; i++ {
		for rep := 0; rep < reps; rep++ {
			for k := range vs {
				v := vs[(k+rep)%len(vs)]
				res := celerytest.Send(b, v.env, tasks, 5*time.Minute)
				if res.Completed != tasks {
					b.Fatalf("%s: %d of %d completed (failed %d, pending %d)", v.name, res.Completed, tasks, res.Failed, res.Pending)
				}
				v.enq = append(v.enq, res.EnqueuePerSecond())
				v.rt = append(v.rt, res.RoundtripPerSecond())
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	for _, v := range vs {
		Record(b, Series{Section: sectionCelery, Metric: "enqueue tasks/s", Variant: v.name, Unit: "tasks/s",
			Better: "higher", Baseline: v.baseline, Target: ">= 0.90", Paired: true, Values: v.enq})
	}
	for _, v := range vs {
		Record(b, Series{Section: sectionCelery, Metric: "round-trip tasks/s", Variant: v.name, Unit: "tasks/s",
			Better: "higher", Baseline: v.baseline, Target: ">= 0.90", Paired: true, Values: v.rt})
	}
	Annotate(b, sectionCelery, "%d send_email tasks per repetition (python3 -m emailworker.client send), %d repetitions, servers alternating; one worker per server "+
		"(the declared env: concurrency 4, prefetch 1, acks_late, json), log level warning. Round trip = enqueue, execute, result stored and read back. "+
		"Baseline: a stock redis-server with the same persistence as ours (--appendonly yes --appendfsync everysec --save \"%s\"), no auth. Target ratio >= 0.90.", tasks, reps, savePoints())
}
