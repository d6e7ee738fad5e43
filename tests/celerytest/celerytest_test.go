package celerytest_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// specialPassword has every character that breaks a naively built URL.
const specialPassword = "p@ss:w/rd#?%"

// broker is a real redis-server with the default user disabled and a
// "celery" ACL user, plus the email-service env pointing at it.
type broker struct {
	server   *redistest.Server
	password string
	env      map[string]string
}

func startBroker(t testing.TB, password string, extraArgs ...string) *broker {
	t.Helper()
	celerytest.Require(t)
	redistest.Require(t)
	// An ACL file keeps the password off redis-server's command line.
	args := redistest.WriteACLFile(t,
		"user default off",
		"user celery on >"+password+" ~* &* +@all",
	)
	args = append(args, "--save", "", "--appendonly", "no")
	srv := redistest.Start(t, redistest.Options{Args: append(args, extraArgs...)})
	return &broker{server: srv, password: password, env: celeryEnv(srv.Addr(), password)}
}

// celeryEnv is the email-service env of the program's settings (the prod profile's Celery defaults,
// URLs built as the program builds them), pointed at addr. Tests of the real program take the env from
// the declared resources instead (tests/celerystack).
func celeryEnv(addr, password string) map[string]string {
	settings, _ := stacks.Defaults("prod", "prod")
	env := settings.Celery.CeleryEnv()
	u := strings.Replace(components.CeleryURL(password, 6379, 0), "@"+components.RedisAlias+":6379/", "@"+addr+"/", 1)
	env["CELERY_BROKER_URL"], env["CELERY_RESULT_BACKEND"] = u, u
	return env
}

func without(env map[string]string, name string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		if k != name {
			out[k] = v
		}
	}
	return out
}

func with(env map[string]string, name, value string) map[string]string {
	out := without(env, name)
	out[name] = value
	return out
}

// assertNoPassword fails when the password, encoded or not, occurs in s.
func assertNoPassword(t testing.TB, what, s string, b *broker) {
	t.Helper()
	encoded := strings.TrimPrefix(url.UserPassword("x", b.password).String(), "x:")
	if strings.Contains(s, b.password) || strings.Contains(s, encoded) {
		t.Errorf("%s contains the broker password", what)
	}
}

func TestRoundTripWithURLSpecialPassword(t *testing.T) {
	b := startBroker(t, specialPassword)
	if !strings.Contains(b.env["CELERY_BROKER_URL"], "%40") {
		t.Fatalf("password not URL-encoded in the broker URL")
	}
	w := celerytest.StartWorker(t, b.env)

	const n = 20
	res := celerytest.Send(t, b.env, n, 60*time.Second)
	if res.Sent != n || res.Completed != n || res.Failed != 0 || res.Pending != 0 {
		t.Fatalf("sent %d completed %d failed %d pending %d, want %d/%d/0/0; errors %v",
			res.Sent, res.Completed, res.Failed, res.Pending, n, n, res.Errors)
	}
	if res.Workers[w.Hostname()] != n {
		t.Errorf("results by worker %v, want all %d from %s", res.Workers, n, w.Hostname())
	}
	if res.ResultKeyError != "" {
		t.Fatalf("reading the result key: %s", res.ResultKeyError)
	}
	if res.ResultDB != 0 || len(res.ResultKeyDBs) != 1 || res.ResultKeyDBs[0] != 0 {
		t.Errorf("result key %s in dbs %v (backend db %d), want only db 0", res.ResultKey, res.ResultKeyDBs, res.ResultDB)
	}
	if res.ResultTTL < 86400-120 || res.ResultTTL > 86400 {
		t.Errorf("result TTL %ds, want about 86400s (CELERY_RESULT_EXPIRES)", res.ResultTTL)
	}

	// The same facts seen by Go, independently of redis-py.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb := b.server.Client(t, "celery", b.password)
	for _, id := range res.TaskIDs {
		ttl, err := rdb.TTL(ctx, "celery-task-meta-"+id).Result()
		if err != nil || ttl < 86000*time.Second {
			t.Fatalf("celery-task-meta-%s in db 0: ttl %v, err %v", id, ttl, err)
		}
	}
	if n, err := rdb.Exists(ctx, "_kombu.binding.celery").Result(); err != nil || n != 1 {
		t.Errorf("_kombu.binding.celery exists = %d, %v; want 1", n, err)
	}

	// Unauthenticated clients are refused: nothing can fall back to an open
	// default user.
	anon := b.server.Client(t, "", "")
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("unauthenticated PING: %v, want NOAUTH", err)
	}

	log := w.Log()
	if !strings.Contains(log, "redis://celery:**@"+b.server.Addr()+"/0") {
		t.Errorf("worker banner does not show the masked broker URL for %s", b.server.Addr())
	}
	assertNoPassword(t, "worker log", log, b)
	assertNoPassword(t, "client output", res.Stdout, b)
}

func TestEnqueueThenCollect(t *testing.T) {
	b := startBroker(t, "plain-password-0123456789abcdef")
	enq := celerytest.Enqueue(t, b.env, 10)
	if enq.Sent != 10 || len(enq.TaskIDs) != 10 {
		t.Fatalf("enqueued %d (%d ids), want 10", enq.Sent, len(enq.TaskIDs))
	}
	// No worker yet: tasks wait in the queue.
	pending := celerytest.Collect(t, b.env, enq.TaskIDs, 500*time.Millisecond)
	if pending.Pending != 10 {
		t.Fatalf("before any worker: %d pending, want 10", pending.Pending)
	}
	celerytest.StartWorker(t, b.env)
	got := celerytest.Collect(t, b.env, enq.TaskIDs, 60*time.Second)
	if got.Completed != 10 {
		t.Fatalf("collected %d completed, %d failed, %d pending; want 10 completed", got.Completed, got.Failed, got.Pending)
	}
}

func TestBadAddressFailsTheTask(t *testing.T) {
	b := startBroker(t, "plain-password-0123456789abcdef")
	celerytest.StartWorker(t, b.env)
	res := celerytest.Client(t, b.env, 30*time.Second, "send", "--count", "2", "--to", "not-an-address", "--timeout", "30")
	if res.Failed != 2 || len(res.Errors) == 0 || !strings.Contains(res.Errors[0], "invalid recipient address") {
		t.Fatalf("failed %d errors %v, want 2 ValueErrors", res.Failed, res.Errors)
	}
}

// TestConfigErrorsNameTheVariable: a missing or malformed variable stops the
// client and the worker with an error naming it, and never falls back to a
// local Redis.
func TestConfigErrorsNameTheVariable(t *testing.T) {
	celerytest.Require(t)
	env := celeryEnv("127.0.0.1:1", "unused-password")
	sentinelURL := "sentinel://celery:unused-password@127.0.0.1:1/0;sentinel://celery:unused-password@127.0.0.1:2/0"
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing broker URL", without(env, "CELERY_BROKER_URL"), "CELERY_BROKER_URL is required"},
		{"empty broker URL", with(env, "CELERY_BROKER_URL", " "), "CELERY_BROKER_URL is required"},
		{"missing result backend", without(env, "CELERY_RESULT_BACKEND"), "CELERY_RESULT_BACKEND is required"},
		{"broker URL without host", with(env, "CELERY_BROKER_URL", "redis:///0"), "CELERY_BROKER_URL must name the Redis host"},
		{"amqp broker", with(env, "CELERY_BROKER_URL", "amqp://guest@rabbit//"), "CELERY_BROKER_URL must use one of the schemes redis://, rediss://, sentinel://"},
		{"concurrency not an int", with(env, "CELERY_WORKER_CONCURRENCY", "four"), "CELERY_WORKER_CONCURRENCY must be an integer"},
		{"expiry not an int", with(env, "CELERY_RESULT_EXPIRES", "1d"), "CELERY_RESULT_EXPIRES must be an integer"},
		{"acks_late not a bool", with(env, "CELERY_TASK_ACKS_LATE", "maybe"), "CELERY_TASK_ACKS_LATE must be true or false"},
		{"pickle", with(env, "CELERY_TASK_SERIALIZER", "pickle"), "CELERY_TASK_SERIALIZER must be one of json"},
		{"pickle accepted", with(env, "CELERY_ACCEPT_CONTENT", "json,pickle"), "CELERY_ACCEPT_CONTENT: unsupported content type 'pickle'"},
		{"visibility below time limit", with(env, "CELERY_BROKER_VISIBILITY_TIMEOUT", "3600"), "CELERY_BROKER_VISIBILITY_TIMEOUT (3600) must exceed CELERY_TASK_TIME_LIMIT (3600)"},
		{"soft limit above hard", with(env, "CELERY_TASK_SOFT_TIME_LIMIT", "4000"), "CELERY_TASK_SOFT_TIME_LIMIT (4000) must be below"},
		{"bad log level", with(env, "CELERY_LOG_LEVEL", "verbose"), "CELERY_LOG_LEVEL must be one of"},
		{"TLS CA not a certificate", with(env, "CELERY_REDIS_TLS_CA", "not-a-pem"), "CELERY_REDIS_TLS_CA must be a PEM certificate"},
		{"TLS CA malformed", with(env, "CELERY_REDIS_TLS_CA", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----"), "CELERY_REDIS_TLS_CA is not a valid PEM certificate"},
		{"mixed schemes", with(env, "CELERY_BROKER_URL", "sentinel://:pw@127.0.0.1:1/0;redis://:pw@127.0.0.1:2/0"), "CELERY_BROKER_URL mixes schemes (redis, sentinel)"},
		{"sentinel without master name", with(with(env, "CELERY_BROKER_URL", sentinelURL), "CELERY_RESULT_BACKEND", sentinelURL), "CELERY_SENTINEL_MASTER_NAME is required with sentinel:// URLs"},
		{"master name without sentinel", with(env, "CELERY_SENTINEL_MASTER_NAME", "emailclient"), "CELERY_SENTINEL_MASTER_NAME is set but CELERY_BROKER_URL is not sentinel://"},
		{"sentinel broker, plain results", with(with(env, "CELERY_BROKER_URL", sentinelURL), "CELERY_SENTINEL_MASTER_NAME", "emailclient"), "CELERY_BROKER_URL and CELERY_RESULT_BACKEND must both use sentinel:// or neither"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := celerytest.Client(t, tc.env, 30*time.Second, "send", "--count", "1", "--timeout", "5")
			if res.ExitCode != 2 || !strings.Contains(res.Error, tc.want) {
				t.Fatalf("exit %d error %q, want exit 2 and %q", res.ExitCode, res.Error, tc.want)
			}
			if strings.Contains(res.Stdout, "unused-password") {
				t.Errorf("client output contains the password")
			}
		})
	}

	t.Run("worker without broker URL", func(t *testing.T) {
		log, err := celerytest.StartWorkerExpectFail(t, without(env, "CELERY_BROKER_URL"))
		if err == nil {
			t.Fatal("worker exited 0")
		}
		if !strings.Contains(log, "CELERY_BROKER_URL is required") {
			t.Fatalf("worker log does not name CELERY_BROKER_URL:\n%s", log)
		}
		if strings.Contains(log, "Connected to") || strings.Contains(log, "localhost:6379") || strings.Contains(log, "127.0.0.1:6379") {
			t.Fatalf("worker tried a default broker:\n%s", log)
		}
	})
}

func TestHealthcheck(t *testing.T) {
	b := startBroker(t, "plain-password-0123456789abcdef")
	w := celerytest.StartWorker(t, b.env)
	if err := w.Healthcheck(10 * time.Second); err != nil {
		t.Fatalf("healthcheck of a running worker: %v", err)
	}
	w.Stop()
	err := w.Healthcheck(2 * time.Second)
	if err == nil {
		t.Fatal("healthcheck passed for a stopped worker")
	}
	if !strings.Contains(err.Error(), "unhealthy: "+w.Hostname()) {
		t.Errorf("verdict %q does not name the worker", err)
	}
	w.Restart(t)
	if err := w.Healthcheck(10 * time.Second); err != nil {
		t.Fatalf("healthcheck after restart: %v", err)
	}
}
