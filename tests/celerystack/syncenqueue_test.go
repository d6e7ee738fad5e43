package celerystack_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

// syncEnqueueTopology starts the declared sentinel topology of dev with celery.syncEnqueue on (timeout
// ms) and returns it with the email-service env the program declares (synchronous) and the same env
// without the two synchronous-enqueue variables (what the program declares with it off).
func syncEnqueueTopology(t *testing.T, topology string, timeoutMs int) (top *realredis.Topology, syncEnv, asyncEnv map[string]string) {
	t.Helper()
	top = realredis.StartSentinelConfig(t, "dev", map[string]string{
		"topology": topology,
		"celery":   fmt.Sprintf(`{"syncEnqueue":{"enabled":true,"replicas":1,"timeoutMilliseconds":%d}}`, timeoutMs),
	})
	syncEnv = top.Env
	require.Equal(t, "1", syncEnv["CELERY_SYNC_ENQUEUE_REPLICAS"], "the program declares synchronous enqueue")
	require.Equal(t, fmt.Sprint(timeoutMs), syncEnv["CELERY_SYNC_ENQUEUE_TIMEOUT_MS"])
	asyncEnv = maps.Clone(syncEnv)
	delete(asyncEnv, "CELERY_SYNC_ENQUEUE_REPLICAS")
	delete(asyncEnv, "CELERY_SYNC_ENQUEUE_TIMEOUT_MS")
	return top, syncEnv, asyncEnv
}

// produceOne enqueues one task with id <prefix>-0 and returns its outcome.
func produceOne(t *testing.T, env map[string]string, prefix string) celerytest.Outcome {
	t.Helper()
	res, err := celerytest.Produce(env, prefix, 1, 1, 0, 30*time.Second)
	require.NoError(t, err)
	require.Empty(t, res.Error, "%s: the producer ran", prefix)
	require.Len(t, res.Outcomes, 1)
	return res.Outcomes[0]
}

// TestSyncEnqueueWaitsForAReplica: with every replica paused (SIGSTOP, as `docker pause`), an
// asynchronous enqueue is acknowledged at once while a synchronous one raises
// EnqueueNotReplicatedError after its timeout, through the real Celery client, the celery ACL user
// (which needs WAIT) and the Sentinels. Refused is not lost: the task is on the primary, and once the
// replicas resume it replicates and runs.
func TestSyncEnqueueWaitsForAReplica(t *testing.T) {
	celerytest.Require(t)
	const timeoutMs = 500
	top, syncEnv, asyncEnv := syncEnqueueTopology(t, `{"mode":"sentinel"}`, timeoutMs)
	celerytest.StartWorker(t, asyncEnv)
	warm := celerytest.Send(t, syncEnv, 5, 60*time.Second)
	require.Equal(t, 5, warm.Completed, "synchronous enqueue works on a healthy topology: %+v", warm)

	for _, r := range top.Nodes[1:] {
		r.Pause()
	}
	resumed := false
	resume := func() {
		if !resumed {
			for _, r := range top.Nodes[1:] {
				r.Resume()
			}
			resumed = true
		}
	}
	t.Cleanup(resume)
	paused := time.Now()
	async := produceOne(t, asyncEnv, "async")
	sync := produceOne(t, syncEnv, "sync")
	within := time.Since(paused)
	resume()
	// After minReplicasMaxLag (3 s by default) the primary refuses every write (NOREPLICAS): both enqueues must
	// have happened before, or the test would measure that instead.
	maxLag := time.Duration(components.DefaultTopology().MinReplicasMaxLag) * time.Second
	require.Less(t, within, maxLag, "both enqueues within topology.minReplicasMaxLag of the pause")

	assert.Empty(t, async.Error, "the asynchronous enqueue is acknowledged by the primary alone")
	assert.Less(t, async.Duration, 0.4, "the asynchronous enqueue does not wait")
	assert.True(t, strings.HasPrefix(sync.Error, "EnqueueNotReplicatedError: "), "the synchronous enqueue raises: %q", sync.Error)
	assert.Contains(t, sync.Error, fmt.Sprintf("only 0 of 1 required replicas acknowledged it within %d ms", timeoutMs))
	assert.GreaterOrEqual(t, sync.Duration, float64(timeoutMs)/1000, "it waited out the timeout")

	done := celerytest.Collect(t, asyncEnv, []string{"async-0", "sync-0"}, 60*time.Second)
	assert.Equal(t, 2, done.Completed, "both ran once the replicas resumed (the refused one was on the primary): %+v", done)
	after := celerytest.Send(t, syncEnv, 5, 60*time.Second)
	assert.Equal(t, 5, after.Completed, "synchronous enqueue works again: %+v", after)
	t.Logf("FIGURE sync enqueue, every replica paused: asynchronous enqueue acknowledged in %.3fs; synchronous raised after %.3fs (timeout %d ms): %s; "+
		"after the replicas resumed %d of 2 ran (the refused task had reached the primary), and 5 of 5 synchronous enqueues went through",
		async.Duration, sync.Duration, timeoutMs, sync.Error, done.Completed)
}

// TestSyncEnqueueCost measures what synchronous enqueue costs per enqueue against the asynchronous
// default, in the same run on the same topology (no worker, no fault): blocks of enqueues from one
// producer, alternating the modes, each block's mean time per enqueue; the ratio of each pair of
// blocks, printed as the median and the spread. Times are never asserted: only that every enqueue was
// acknowledged.
func TestSyncEnqueueCost(t *testing.T) {
	celerytest.Require(t)
	_, syncEnv, asyncEnv := syncEnqueueTopology(t, `{"mode":"sentinel"}`, 1000)
	const blocks, perBlock = 9, 500
	mean := func(env map[string]string, prefix string) float64 {
		res, err := celerytest.Produce(env, prefix, perBlock, 1, 0, 2*time.Minute)
		require.NoError(t, err)
		require.Empty(t, res.Error)
		sum := 0.0
		for _, o := range res.Outcomes[perBlock/10:] { // the first tenth warms the connection pool
			require.Empty(t, o.Error, "%s-%d", prefix, o.I)
			sum += o.Duration
		}
		return sum / float64(perBlock-perBlock/10)
	}
	mean(asyncEnv, "warm") // imports, connections, the Sentinels' first answers
	var ratios, asyncMs, syncMs []float64
	for b := range blocks {
		var a, s float64
		if b%2 == 0 { // alternate which mode runs first
			a, s = mean(asyncEnv, fmt.Sprintf("async%d", b)), mean(syncEnv, fmt.Sprintf("sync%d", b))
		} else {
			s, a = mean(syncEnv, fmt.Sprintf("sync%d", b)), mean(asyncEnv, fmt.Sprintf("async%d", b))
		}
		asyncMs, syncMs, ratios = append(asyncMs, a*1000), append(syncMs, s*1000), append(ratios, s/a)
	}
	slices.Sort(ratios)
	slices.Sort(asyncMs)
	slices.Sort(syncMs)
	t.Logf("FIGURE sync enqueue cost: %d blocks of %d enqueues per mode, one producer, WAIT 1 replica: per enqueue asynchronous median %.3f ms (%.3f-%.3f), "+
		"synchronous median %.3f ms (%.3f-%.3f); ratio synchronous/asynchronous median %.2f (min %.2f, max %.2f)",
		blocks, perBlock, asyncMs[blocks/2], asyncMs[0], asyncMs[blocks-1], syncMs[blocks/2], syncMs[0], syncMs[blocks-1],
		ratios[blocks/2], ratios[0], ratios[blocks-1])
}
