package celerystack_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

// TestSentinelFailoverUnderCeleryLoad kills the primary of the declared sentinel topology while a
// real Celery worker has work queued, and measures the failover time (kill to the first task that
// completes through the new primary), and accounts for every queued task (celerytest.Account): a
// crash of the primary may lose only the one message the worker's BRPOP had in flight
// (celerytest.AssertCrashLoss).
func TestSentinelFailoverUnderCeleryLoad(t *testing.T) {
	celerytest.Require(t)
	top := realredis.StartSentinel(t, "dev", `{"mode":"sentinel","downAfterMilliseconds":2000,"failoverTimeoutMilliseconds":20000}`)
	env := top.Env
	oldPrimary := top.PrimaryAddr(t)
	require.Equal(t, top.Nodes[0].Addr(), oldPrimary, "redis-0 starts as the primary")

	worker := celerytest.StartWorker(t, env)
	warm := celerytest.Send(t, env, 10, 60*time.Second)
	require.Equal(t, 10, warm.Completed, "tasks run through the Sentinels before the failover")

	const n = 200
	queued := celerytest.Enqueue(t, env, n)
	require.Len(t, queued.TaskIDs, n)
	kill := time.Now()
	top.Nodes[0].Kill9()

	// The first task that round-trips after the kill went through the new primary.
	var firstOK time.Duration
	for time.Since(kill) < 90*time.Second {
		res, err := celerytest.RunClient(env, 30*time.Second, "send", "--count", "1", "--timeout", "10")
		if err == nil && res.Completed == 1 {
			firstOK = time.Since(kill)
			break
		}
	}
	require.NotZero(t, firstOK, "no task completed within 90s of killing the primary")
	newPrimary := top.PrimaryAddr(t)
	assert.NotEqual(t, oldPrimary, newPrimary, "a replica was promoted")

	done := celerytest.Collect(t, env, queued.TaskIDs, 120*time.Second)
	acc := celerytest.NewAccount(queued.TaskIDs, done, celerytest.Client(t, env, time.Minute, "queue"), worker.Log())
	t.Logf("FIGURE sentinel failover: primary %s -> %s, first task after the kill in %.1fs (down-after 2s), queued tasks: %s",
		oldPrimary, newPrimary, firstOK.Seconds(), acc)
	after := celerytest.Send(t, env, 10, 60*time.Second)
	assert.Equal(t, 10, after.Completed, "the worker keeps working on the new primary")
	celerytest.AssertCrashLoss(t, acc, 1)
}

// TestClientGivingUpOnSentinelExitsWithOnlyItsJSONLine runs the client against the declared sentinel
// topology with no worker, so every result is still pending when it gives up. It must print its one
// JSON line and nothing on stderr: before the client skipped interpreter teardown, the pending
// results unsubscribed through an already freed Sentinel pool at exit and redis-py printed a
// ReferenceError traceback after the JSON line (redis/redis-py#2767), which is what a caller reading
// the last line saw (the multi-host tier failed on it).
func TestClientGivingUpOnSentinelExitsWithOnlyItsJSONLine(t *testing.T) {
	celerytest.Require(t)
	top := realredis.StartSentinel(t, "dev", `{"mode":"sentinel"}`)
	queued := celerytest.Enqueue(t, top.Env, 3)
	require.Len(t, queued.TaskIDs, 3)
	assert.Empty(t, celerytest.Redact(queued.Stderr, top.Env), "enqueue: stderr")
	for _, args := range [][]string{
		{"send", "--count", "3", "--timeout", "2"},
		append([]string{"collect", "--timeout", "2"}, queued.TaskIDs...),
	} {
		res := celerytest.Client(t, top.Env, 20*time.Second, args...)
		assert.Equal(t, 0, res.ExitCode, "%s: exit code", args[0])
		assert.Equal(t, 3, res.Pending, "%s: no worker, so every result is pending: %+v", args[0], res)
		assert.Empty(t, celerytest.Redact(res.Stderr, top.Env), "%s: stderr", args[0])
		assert.Equal(t, 1, strings.Count(strings.TrimSpace(res.Stdout), "\n")+1, "%s: one line on stdout", args[0])
	}
}
