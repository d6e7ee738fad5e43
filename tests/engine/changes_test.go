package engine_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/engine"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// TestConfigChangeUnderLoadLosesNothing: a change that replaces both Redis (its redis.conf) and the
// email-service (its env), deployed with `pulumi up` while a client writes acknowledged RPUSHes through
// the host port and two 45 s tasks run in the worker (started before the up, so still running when
// the worker is stopped; its grace is 60 s). It prints the acknowledged writes lost, the
// longest gap between two acknowledged writes (the outage), and what became of the running tasks; it
// requires 0 lost writes and both tasks completed (the graceful stops: Redis's final save, Celery's
// warm shutdown).
func TestConfigChangeUnderLoadLosesNothing(t *testing.T) {
	p, _, port := newDevStack(t)
	p.Up()
	email := p.Output("emailServiceContainer")
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), Username: "celery",
		Password: passwordOf(t, p.Output("celeryBrokerUrl")), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { _ = client.Close() })
	const key = "engine:acknowledged"

	// Two slow tasks running in the worker when the change lands.
	enqueuedAt := time.Now()
	enq, err := exec.Command("docker", "exec", email, "python3", "-m", "emailworker.client", "enqueue",
		"--task", "sleep_then_send", "--seconds", "45", "--count", "2").Output()
	require.NoError(t, err, "enqueue: %s", enq)
	var enqueued struct {
		TaskIDs []string `json:"task_ids"`
	}
	require.NoError(t, json.Unmarshal([]byte(lastLine(string(enq))), &enqueued), "%s", enq)
	require.Len(t, enqueued.TaskIDs, 2)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var acked []int
	var longestGap time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := time.Now()
		for i := 0; ctx.Err() == nil; {
			if err := client.RPush(ctx, key, i).Err(); err != nil {
				time.Sleep(20 * time.Millisecond)
				continue // not acknowledged: the same value again
			}
			acked = append(acked, i)
			longestGap = max(longestGap, time.Since(last))
			last = time.Now()
			i++
		}
	}()
	time.Sleep(2 * time.Second)
	p.SetPath("redis.loglevel", "warning")
	p.SetPath("celery.logLevel", "info")
	start := time.Now()
	up := p.Up()
	upTime := time.Since(start)
	assert.Positive(t, (*up.Changes)["replace"], "the change replaces containers: %v", *up.Changes)
	// Writes go on until Redis answers again, and a little after.
	deadline := time.Now().Add(60 * time.Second)
	for n := len(acked); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if len(acked) > n+20 {
			break
		}
	}
	stop()
	wg.Wait()

	got, err := client.LRange(context.Background(), key, 0, -1).Result()
	require.NoError(t, err)
	present := map[string]bool{}
	for _, v := range got {
		present[v] = true
	}
	lost := 0
	for _, i := range acked {
		if !present[strconv.Itoa(i)] {
			lost++
		}
	}
	collected, _ := exec.Command("docker", "exec", email, "python3", "-m", "emailworker.client", "collect",
		"--timeout", "30", enqueued.TaskIDs[0], enqueued.TaskIDs[1]).Output()
	var res celerytest.Result
	require.NoError(t, json.Unmarshal([]byte(lastLine(string(collected))), &res), "collect: %s\nlogs:\n%s", collected, logs(email))
	t.Logf("FIGURE config change under load (pulumi up %s, started %s after the tasks): %d acknowledged writes, %d lost; longest gap between acknowledged writes %s; running 45 s tasks: %d of 2 completed, %d pending 30 s after the up",
		upTime.Round(100*time.Millisecond), start.Sub(enqueuedAt).Round(100*time.Millisecond), len(acked), lost, longestGap.Round(10*time.Millisecond), res.Completed, res.Pending)
	assert.Zero(t, lost, "acknowledged writes lost across the replace")
	assert.Equal(t, 2, res.Completed, "the running tasks finish (warm shutdown) instead of waiting out the visibility timeout")
}

// TestDevAndProdSideBySide: a dev-profile and a prod-profile stack deployed with their default names
// on one engine by the users' own command, `make up` (deploy.sh): both healthy, no container, volume or
// network shared; `make destroy` removes dev and refuses prod while its volumes are protected.
func TestDevAndProdSideBySide(t *testing.T) {
	engine.Require(t)
	sfx := strings.ToLower(strconv.FormatInt(time.Now().UnixNano()%1e8, 36))
	dev := engine.NewScopedProject(t, "side-dev-"+sfx, "dev")
	port, err := redistest.FreePort()
	require.NoError(t, err)
	dev.SetPath("container.hostPort", strconv.Itoa(port))
	prod := engine.NewScopedProject(t, "side-prod-"+sfx, "prod")
	prodDataAndImage(t, prod, "side-prod-"+sfx)
	for _, p := range []*engine.Project{dev, prod} {
		out, err := p.Make("up", "STACK="+p.Stack)
		require.NoError(t, err, "make up STACK=%s:\n%s", p.Stack, engine.Tail(out, 60))
	}
	objects := map[string]string{}
	for _, p := range []*engine.Project{dev, prod} {
		prefix := "emailclient-" + p.Stack + "-"
		for kind, format := range map[string]string{"ps -a": "{{.Names}}", "volume ls": "{{.Name}}", "network ls": "{{.Name}}"} {
			out, err := exec.Command("docker", append(strings.Fields(kind), "--format", format, "--filter", "name="+prefix)...).Output()
			require.NoError(t, err, "docker %s", kind)
			for _, name := range strings.Fields(string(out)) {
				require.NotContains(t, objects, name, "shared by both stacks")
				objects[name] = p.Stack
			}
		}
		redisName := p.Output("redisContainer")
		assert.True(t, strings.HasPrefix(redisName, prefix), "scoped by stack: %s", redisName)
		state, _ := exec.Command("docker", "inspect", "--format", "{{.State.Health.Status}}", redisName).Output()
		assert.Equal(t, "healthy", strings.TrimSpace(string(state)), redisName)
		roundTrip(t, p.Output("emailServiceContainer"))
	}
	t.Logf("FIGURE dev and prod on one engine: both healthy, %d Docker objects, none shared", len(objects))
	assert.GreaterOrEqual(t, len(objects), 10)

	out, err := prod.Make("destroy", "STACK="+prod.Stack)
	require.Error(t, err, "make destroy of a protected prod stack must fail")
	assert.Contains(t, out, "protected", "the error says why")
	out, err = dev.Make("destroy", "STACK="+dev.Stack)
	require.NoError(t, err, "make destroy:\n%s", engine.Tail(out, 40))
	left, _ := exec.Command("docker", "ps", "-a", "-q", "--filter", "name=emailclient-"+dev.Stack+"-").Output()
	assert.Empty(t, strings.TrimSpace(string(left)), "containers left after make destroy")
}

// lastLine is the last line of a command's output (the client's one JSON line).
func lastLine(s string) string { return engine.Tail(strings.TrimSpace(s), 1) }

// TestStandaloneToSentinelKeepsData: a standalone dev stack holding keys (with TTLs) and queued
// tasks switched to the Sentinel topology with `pulumi up`: the initial primary starts on the
// standalone broker's data, the replicas sync from it, nothing is lost.
func TestStandaloneToSentinelKeepsData(t *testing.T) {
	p, _, port := newDevStack(t)
	p.SetPath("emailService.enabled", "false") // queued tasks stay queued: no worker consumes them
	p.Up()
	opsPw := p.Output("opsPassword")
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), Username: "ops", Password: opsPw})
	ctx := context.Background()
	const keys = 1000
	pipe := client.Pipeline()
	for i := range keys {
		pipe.Set(ctx, "engine:key:"+strconv.Itoa(i), i, time.Hour)
	}
	pipe.RPush(ctx, "celery", "task-1", "task-2", "task-3") // Celery's default queue
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	before, err := client.DBSize(ctx).Result()
	require.NoError(t, err)
	_ = client.Close()

	p.SetPath("topology.mode", "sentinel")
	p.SetPath("container.hostPort", "0")
	start := time.Now()
	p.Up()
	t.Logf("pulumi up standalone -> sentinel: %s", time.Since(start).Round(100*time.Millisecond))
	p.PreviewNoChanges()

	primary := p.Output("redisContainer")
	count := func(container string, command ...string) string {
		cmd := exec.Command("docker", append([]string{"exec", "-e", "REDISCLI_AUTH", container, "redis-cli", "--no-auth-warning", "--user", "ops"}, command...)...)
		cmd.Env = append(cmd.Environ(), "REDISCLI_AUTH="+opsPw)
		out, _ := cmd.CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	replica := strings.TrimSuffix(primary, "-0") + "-1"
	var onReplica string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if onReplica = count(replica, "dbsize"); onReplica == strconv.FormatInt(before, 10) {
			break
		}
	}
	onPrimary := count(primary, "dbsize")
	queued := count(primary, "llen", "celery")
	t.Logf("FIGURE standalone -> sentinel: %d keys before (1000 with a 1 h TTL, the celery queue of 3 tasks); after: primary %s keys, replica %s, celery queue %s",
		before, onPrimary, onReplica, queued)
	assert.Equal(t, strconv.FormatInt(before, 10), onPrimary, "keys kept on the new primary")
	assert.Equal(t, strconv.FormatInt(before, 10), onReplica, "and replicated")
	assert.Equal(t, "3", queued)
}
