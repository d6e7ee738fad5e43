package ops

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// The CLI's errors say what failed; go-redis' own pool log is noise here.
func init() { redis.SetLogger(&logging.VoidLogger{}) }

// testPassword is the ops user's password in tests; it is only ever written
// to an ACL file and passed through the fake environment, never printed.
const testPassword = "ops-test-pw-0123456789abcdef"

// startRedis starts a real redis-server with ACL users (default off, ops
// with the declared rules of the ops user, celery restricted) and AOF on,
// plus extra args.
func startRedis(t *testing.T, extra ...string) *redistest.Server {
	t.Helper()
	return redistest.Start(t, redistest.Options{Args: redisArgs(t, extra...)})
}

func redisArgs(t *testing.T, extra ...string) []string {
	acl := redistest.WriteACLFile(t,
		"user default off",
		"user ops "+strings.Join(redisconf.ACLRules(redisconf.OpsUser), " ")+" >"+testPassword,
		"user celery on >celery-test-pw ~* &* +@all -info -config -keys -flushall",
	)
	return append(append(acl, "--appendonly", "yes"), extra...)
}

// opsClient returns an admin client for seeding data.
func opsClient(t *testing.T, s *redistest.Server) *redis.Client {
	return s.Client(t, "ops", testPassword)
}

// result is the outcome of one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs redis-ops with REDIS_ADDR=addr and the ops password in the
// environment (plus extra KEY=VALUE pairs in vars).
func cli(t *testing.T, addr string, vars map[string]string, args ...string) result {
	t.Helper()
	return cliCtx(context.Background(), t, addr, vars, false, args...)
}

func cliCtx(ctx context.Context, t *testing.T, addr string, vars map[string]string, terminal bool, args ...string) result {
	t.Helper()
	return cliWith(ctx, t, addr, vars, func(e *env) { e.isTerminal = func(io.Writer) bool { return terminal } }, args...)
}

// cliWith is cliCtx with the environment changed by mod before the run (a fake Docker engine, a
// clock).
func cliWith(ctx context.Context, t *testing.T, addr string, vars map[string]string, mod func(*env), args ...string) result {
	t.Helper()
	envVars := map[string]string{"REDIS_ADDR": addr, "REDIS_PASSWORD": testPassword}
	for k, v := range vars {
		envVars[k] = v
	}
	var out, errb bytes.Buffer
	e := &env{
		stdout: &out, stderr: &errb,
		getenv:     func(k string) string { return envVars[k] },
		isTerminal: func(io.Writer) bool { return false },
		now:        time.Now,
	}
	mod(e)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	code := e.run(ctx, args)
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	if bytes.Contains(out.Bytes(), []byte(testPassword)) || bytes.Contains(errb.Bytes(), []byte(testPassword)) {
		t.Fatalf("redis-ops printed the password (args %v)", args)
	}
	return r
}

// seed writes every data type, Celery-like keys and TTLs; it returns the
// number of keys written.
func seed(t *testing.T, c *redis.Client) int {
	t.Helper()
	ctx := context.Background()
	p := c.Pipeline()
	p.Set(ctx, "str:plain", "hello", 0)
	p.Set(ctx, "str:ttl", "bye", time.Hour)
	p.Set(ctx, "str:big", bytes.Repeat([]byte("x"), 200_000), 0)
	p.HSet(ctx, "hash:user", "name", "ada", "mail", "ada@example.com")
	p.Expire(ctx, "hash:user", 2*time.Hour)
	p.RPush(ctx, "list:log", "a", "b", "c")
	p.SAdd(ctx, "set:tags", "x", "y", "z")
	p.ZAdd(ctx, "zset:rank", redis.Z{Score: 1, Member: "one"}, redis.Z{Score: 2.5, Member: "two"})
	p.XAdd(ctx, &redis.XAddArgs{Stream: "stream:events", ID: "1-1", Values: map[string]any{"k": "v"}})
	p.XAdd(ctx, &redis.XAddArgs{Stream: "stream:events", ID: "2-1", Values: map[string]any{"k": "w"}})
	// Celery/kombu: queue, priority sub-queue, bindings, unacked, results.
	p.RPush(ctx, "celery", `{"body":"task1"}`, `{"body":"task2"}`, `{"body":"task3"}`)
	p.RPush(ctx, "celery"+kombuSep+"6", `{"body":"prio"}`)
	p.RPush(ctx, "emails", `{"body":"send"}`)
	p.SAdd(ctx, "_kombu.binding.celery", "celery"+kombuSep+kombuSep+"celery")
	p.SAdd(ctx, "_kombu.binding.emails", "emails"+kombuSep+kombuSep+"emails")
	p.HSet(ctx, "unacked", "tag-1", `{"body":"inflight"}`)
	p.ZAdd(ctx, "unacked_index", redis.Z{Score: float64(time.Now().Unix()), Member: "tag-1"})
	for i := 0; i < 5; i++ {
		p.Set(ctx, fmt.Sprintf("celery-task-meta-%d", i), `{"status":"SUCCESS"}`, 24*time.Hour)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return 20
}
