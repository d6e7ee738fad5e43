package realredis_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/realredis"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// overridden are the directives the test harness moves to its own port, address and directories.
var overridden = map[string]bool{"port": true, "bind": true, "dir": true, "aclfile": true, "logfile": true, "daemonize": true}

// memoryDirectives are answered in bytes by CONFIG GET.
var memoryDirectives = map[string]bool{"maxmemory": true, "auto-aof-rewrite-min-size": true}

func TestDeclaredConfigIsInEffect(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		t.Run(stack, func(t *testing.T) {
			b := realredis.Start(t, stack, realredis.Options{})
			root, err := stacks.FindRoot()
			require.NoError(t, err)
			s, err := stacks.LoadStackFile(root, stack)
			require.NoError(t, err)
			ops := b.Client(t, redisconf.OpsUser)
			checked := 0
			for _, d := range s.Redis.Directives() {
				if overridden[d.Name] {
					continue
				}
				got, err := ops.ConfigGet(realredis.Ctx(t), d.Name).Result()
				require.NoError(t, err, d.Name)
				want := strings.Join(d.Args, " ")
				if memoryDirectives[d.Name] {
					n, err := redisconf.ParseMemory(want)
					require.NoError(t, err)
					want = strconv.FormatInt(n, 10)
				}
				assert.Equal(t, want, got[d.Name], "CONFIG GET %s", d.Name)
				checked++
			}
			assert.GreaterOrEqual(t, checked, 18)
			// Every setting of BRIEF §3 was among them.
			for _, name := range []string{"maxmemory", "maxmemory-policy", "maxmemory-samples", "save", "appendonly", "appendfsync",
				"auto-aof-rewrite-percentage", "auto-aof-rewrite-min-size", "aof-use-rdb-preamble", "rdbcompression", "rdbchecksum", "protected-mode"} {
				got, err := ops.ConfigGet(realredis.Ctx(t), name).Result()
				require.NoError(t, err)
				require.NotEmpty(t, got[name], name)
			}
		})
	}
}

func TestAuthenticationIsEnforced(t *testing.T) {
	b := realredis.Start(t, "dev", realredis.Options{})
	ctx := realredis.Ctx(t)
	anon := redis.NewClient(&redis.Options{Addr: b.Addr()})
	defer anon.Close()
	err := anon.Set(ctx, "k", "v", 0).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "NOAUTH")

	wrong := redis.NewClient(&redis.Options{Addr: b.Addr(), Username: redisconf.CeleryUser, Password: "not-the-password"})
	defer wrong.Close()
	err = wrong.Ping(ctx).Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "WRONGPASS")

	defaultUser := redis.NewClient(&redis.Options{Addr: b.Addr(), Username: "default", Password: ""})
	defer defaultUser.Close()
	require.Error(t, defaultUser.Ping(ctx).Err(), "the default user is off")

	celery := b.Client(t, redisconf.CeleryUser)
	require.NoError(t, celery.Set(ctx, "k", "v", time.Minute).Err())
	require.NoError(t, celery.LPush(ctx, "celery", "task").Err())
	for _, cmd := range [][]any{{"flushall"}, {"flushdb"}, {"config", "get", "maxmemory"}, {"debug", "object", "k"},
		{"shutdown"}, {"keys", "*"}, {"info"}, {"script", "flush"}, {"acl", "list"}} {
		err := celery.Do(ctx, cmd...).Err()
		require.Error(t, err, "celery user runs %v", cmd)
		if cmd[0] != "debug" { // DEBUG is refused before the ACL check: the debug command is disabled
			assert.Contains(t, err.Error(), "NOPERM", "%v", cmd)
		}
	}
	ops := b.Client(t, redisconf.OpsUser)
	require.NoError(t, ops.Info(ctx, "server").Err())
	n, err := ops.Exists(ctx, "celery", "k").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(2), n, "nothing was flushed")
}

func TestDataSurvivesRestartAndKill9(t *testing.T) {
	b := realredis.Start(t, "dev", realredis.Options{})
	ctx := realredis.Ctx(t)
	c := b.Client(t, redisconf.CeleryUser)
	for i := 0; i < 1000; i++ {
		require.NoError(t, c.RPush(ctx, "queue", i).Err())
	}
	b.Stop()
	b.Restart(t)
	c = b.Client(t, redisconf.CeleryUser)
	n, err := c.LLen(ctx, "queue").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1000), n, "clean restart keeps everything")

	// kill -9 under a steady write load: every acknowledged write must be back (AOF everysec writes to
	// the kernel before replying; only an OS crash could lose up to about a second).
	var acked atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := c.Set(ctx, fmt.Sprintf("w:%d", i), i, 0).Err(); err != nil {
				return
			}
			acked.Store(int64(i + 1))
		}
	}()
	time.Sleep(2 * time.Second)
	b.Kill9()
	close(stop)
	<-done
	elapsed := time.Since(start)
	b.Restart(t)
	c = b.Client(t, redisconf.CeleryUser)
	var lost int64
	keys := make([]string, 0, 1000)
	for i := int64(0); i < acked.Load(); i++ {
		keys = append(keys, fmt.Sprintf("w:%d", i))
		if len(keys) == cap(keys) || i == acked.Load()-1 {
			vals, err := c.MGet(ctx, keys...).Result()
			require.NoError(t, err)
			for _, v := range vals {
				if v == nil {
					lost++
				}
			}
			keys = keys[:0]
		}
	}
	rate := float64(acked.Load()) / elapsed.Seconds()
	t.Logf("FIGURE kill-9: %d acknowledged writes in %.1fs (%.0f/s), %d lost (%.3f s of load)", acked.Load(), elapsed.Seconds(), rate, lost, float64(lost)/rate)
	require.Greater(t, acked.Load(), int64(100), "the load ran")
	assert.LessOrEqual(t, float64(lost), rate, "at most about one second of acknowledged writes is lost")
}

func TestEvictionKeepsKeysWithoutTTL(t *testing.T) {
	// The declared policy (volatile-lru) with a small maxmemory so that pressure comes quickly.
	b := realredis.Start(t, "dev", realredis.Options{Args: []string{"--maxmemory", "8mb"}})
	ctx := realredis.Ctx(t)
	c := b.Client(t, redisconf.CeleryUser)
	value := strings.Repeat("x", 1024)
	// Queue and bindings: no TTL, like kombu's.
	for i := 0; i < 1000; i++ {
		require.NoError(t, c.RPush(ctx, "celery", value).Err())
	}
	require.NoError(t, c.SAdd(ctx, "_kombu.binding.celery", "celery\x06\x16\x06\x16celery").Err())
	// Results: with a TTL, like Celery's; far more than fits.
	for i := 0; i < 20000; i++ {
		if err := c.Set(ctx, fmt.Sprintf("celery-task-meta-%d", i), value, time.Hour).Err(); err != nil {
			t.Fatalf("writes must not fail while results can be evicted: %v", err)
		}
	}
	n, err := c.LLen(ctx, "celery").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1000), n, "no queued task was evicted")
	ok, err := c.SIsMember(ctx, "_kombu.binding.celery", "celery\x06\x16\x06\x16celery").Result()
	require.NoError(t, err)
	assert.True(t, ok, "bindings are kept")
	ops := b.Client(t, redisconf.OpsUser)
	evicted := infoField(t, ops, "stats", "evicted_keys")
	assert.Greater(t, evicted, 0, "results were evicted")

	// Nothing volatile left: writes fail loudly instead of losing tasks.
	var oomErr error
	for i := 0; i < 20000 && oomErr == nil; i++ {
		oomErr = c.RPush(ctx, "celery", value).Err()
	}
	require.Error(t, oomErr)
	assert.Contains(t, oomErr.Error(), "OOM")
	after, err := c.LLen(ctx, "celery").Result()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after, int64(1000), "the queue is intact")
	t.Logf("FIGURE eviction: %d results evicted, queue kept %d tasks, then OOM: %v", evicted, after, oomErr)
}

func infoField(t *testing.T, c *redis.Client, section, field string) int {
	t.Helper()
	info, err := c.Info(realredis.Ctx(t), section).Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			return n
		}
	}
	t.Fatalf("%s not in INFO %s", field, section)
	return 0
}

func TestHealthcheckVerdicts(t *testing.T) {
	b := realredis.Start(t, "dev", realredis.Options{})
	out, ok := b.Healthcheck(t)
	assert.True(t, ok, out)
	assert.Equal(t, "healthy: PONG, persistence ok", out)

	wrong := filepath.Join(t.TempDir(), "wrong")
	require.NoError(t, os.WriteFile(wrong, []byte("not-the-password"), 0o444))
	out, ok = b.Healthcheck(t, "REDIS_HEALTHCHECK_PASSWORD_FILE="+wrong)
	assert.False(t, ok, "wrong password: %s", out)
	assert.Contains(t, out, "unhealthy")
	assert.NotContains(t, out, "not-the-password")

	out, ok = b.Healthcheck(t, "REDIS_HEALTHCHECK_PASSWORD_FILE=/nonexistent")
	assert.False(t, ok, out)
	assert.Contains(t, out, "missing or empty")

	out, ok = b.Healthcheck(t, "REDIS_HEALTHCHECK_USER=default")
	assert.False(t, ok, "a NOAUTH/WRONGPASS reply is not healthy: %s", out)

	// Persistence fails: the data directory turns unwritable after startup.
	ops := b.Client(t, redisconf.OpsUser)
	require.NoError(t, os.Chmod(b.DataDir, 0o500))
	t.Cleanup(func() { os.Chmod(b.DataDir, 0o700) })
	if os.Geteuid() == 0 && !strings.Contains(realredis.Entrypoint(t, b.Root), "as-redis") {
		t.Fatal("as root, Redis must run as the redis user for this check")
	}
	_ = ops.BgSave(realredis.Ctx(t)).Err()
	require.Eventually(t, func() bool {
		info, err := ops.Info(realredis.Ctx(t), "persistence").Result()
		return err == nil && strings.Contains(info, "rdb_last_bgsave_status:err")
	}, 20*time.Second, 100*time.Millisecond)
	out, ok = b.Healthcheck(t)
	assert.False(t, ok, out)
	assert.Contains(t, out, "cannot persist")
	err := b.Client(t, redisconf.CeleryUser).Set(realredis.Ctx(t), "k", "v", 0).Err()
	require.Error(t, err, "writes are refused loudly")
	assert.Contains(t, err.Error(), "MISCONF")
	require.NoError(t, os.Chmod(b.DataDir, 0o700))
}

func TestHealthcheckSaysStartingWhileLoading(t *testing.T) {
	// key-load-delay (a Redis debug setting, in microseconds per key) makes loading slow enough to watch.
	// Events are served every 1 KiB loaded instead of every 2 MiB, so the check gets its answer.
	b := realredis.Start(t, "dev", realredis.Options{Args: []string{"--key-load-delay", "200", "--loading-process-events-interval-bytes", "1024"}})
	ctx := realredis.Ctx(t)
	ops := b.Client(t, redisconf.OpsUser)
	pipe := ops.Pipeline()
	for i := 0; i < 30000; i++ {
		pipe.Set(ctx, fmt.Sprintf("k:%d", i), i, 0)
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	require.NoError(t, ops.BgRewriteAOF(ctx).Err())
	require.Eventually(t, func() bool {
		info, err := ops.Info(ctx, "persistence").Result()
		return err == nil && strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0")
	}, 30*time.Second, 100*time.Millisecond)
	b.Stop()
	seen := make(chan string, 1)
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if out, ok := b.Healthcheck(t); !ok && strings.HasPrefix(out, "starting") {
				seen <- out
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		seen <- ""
	}()
	b.Restart(t)
	out := <-seen
	assert.Equal(t, "starting: Redis is loading its dataset", out)
	out, ok := b.Healthcheck(t)
	assert.True(t, ok, "healthy once loaded: %s", out)
}

func TestEntrypointRefusesBrokenDeployments(t *testing.T) {
	redistest.Require(t)
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	for name, broken := range map[string]func(runDir string){
		"missing ACL file":      func(d string) { os.Remove(filepath.Join(d, "users.acl")) },
		"empty ACL file":        func(d string) { os.WriteFile(filepath.Join(d, "users.acl"), nil, 0o444) },
		"missing password file": func(d string) { os.Remove(filepath.Join(d, "ops.password")) },
		"empty password file":   func(d string) { os.WriteFile(filepath.Join(d, "ops.password"), nil, 0o444) },
		"missing config":        func(d string) { os.Remove(filepath.Join(d, "redis.conf")) },
	} {
		t.Run(name, func(t *testing.T) {
			b := realredis.Start(t, "dev", realredis.Options{})
			b.Stop()
			broken(b.RunDir)
			log, err := redistest.StartExpectFail(t, redistest.Options{
				ConfigFile: filepath.Join(b.RunDir, "redis.conf"),
				Dir:        b.DataDir,
				Entrypoint: realredis.Entrypoint(t, root),
				Env:        []string{"REDIS_RUN_DIR=" + b.RunDir, "REDIS_DATA_DIR=" + b.DataDir},
			})
			require.Error(t, err, "non-zero exit")
			assert.Contains(t, log, "docker-entrypoint: error:")
			assert.Contains(t, log, "missing or empty")
			assert.NotContains(t, log, b.Ops)
		})
	}
}
