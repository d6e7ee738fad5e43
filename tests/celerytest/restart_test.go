package celerytest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/tests/celerytest"
)

// TestBrokerRestartDuringWork restarts redis-server (AOF on) while the worker
// has tasks in progress, then sends more. It reports how many tasks did not
// complete and what the healthcheck said, and requires that no task is lost
// once the stalled worker is replaced (what the container's healthcheck and
// restart policy do). Debian's kombu 5.2.4 has the reconnect stall fixed in
// kombu 5.4 (celery#8030); the image pins kombu >= 5.4.
func TestBrokerRestartDuringWork(t *testing.T) {
	if testing.Short() {
		t.Skip("tier celery: broker restart scenarios take up to two minutes; skipped with -short")
	}
	t.Run("busy worker", func(t *testing.T) { brokerRestart(t, 20) })
	t.Run("idle worker", func(t *testing.T) { brokerRestart(t, 0) })
}

// brokerRestart enqueues busy slow tasks (0.5s each), restarts Redis one
// second later, then enqueues 20 quick ones.
func brokerRestart(t *testing.T, busy int) {
	b := startBroker(t, "restart-password-0123456789abcdef", "--appendonly", "yes", "--appendfsync", "everysec")
	w := celerytest.StartWorker(t, b.env)

	var before celerytest.Result
	if busy > 0 {
		before = celerytest.Client(t, b.env, time.Minute,
			"enqueue", "--count", fmt.Sprint(busy), "--task", "sleep_then_send", "--seconds", "0.5")
		if before.Error != "" || before.Sent != busy {
			t.Fatalf("enqueue before restart: sent %d, error %q", before.Sent, before.Error)
		}
	}
	time.Sleep(1 * time.Second) // some in progress, some queued
	b.server.Restart(t)
	after := celerytest.Enqueue(t, b.env, 20)

	ids := append(append([]string{}, before.TaskIDs...), after.TaskIDs...)
	got := celerytest.Collect(t, b.env, ids, 45*time.Second)
	health := w.Healthcheck(10 * time.Second)
	t.Logf("after a broker restart, same worker: %d/%d completed, %d failed, %d still pending after 45s; healthcheck: %v",
		got.Completed, len(ids), got.Failed, got.Pending, verdict(health))

	if got.Pending > 0 && health == nil {
		t.Errorf("%d tasks stalled but the healthcheck passed: it must catch a stalled consumer", got.Pending)
	}
	if got.Pending == 0 && health != nil {
		t.Errorf("all tasks completed but the healthcheck failed: %v", health)
	}

	// What the restart policy does with an unhealthy worker.
	if got.Pending > 0 {
		w.Restart(t)
	}
	final := celerytest.Collect(t, b.env, ids, 60*time.Second)
	t.Logf("after replacing the worker: %d/%d completed, %d failed, %d lost", final.Completed, len(ids), final.Failed, final.Pending)
	if final.Completed != len(ids) {
		t.Fatalf("%d of %d tasks lost or failed across the broker restart (failed %d: %v)",
			len(ids)-final.Completed, len(ids), final.Failed, final.Errors)
	}
	if err := w.Healthcheck(10 * time.Second); err != nil {
		t.Errorf("healthcheck after replacing the worker: %v", err)
	}
	t.Logf("tasks executed more than once (at-least-once delivery): %d", duplicates(w.Log(), ids))
}

// duplicates counts the tasks that the worker log shows succeeding twice.
func duplicates(log string, ids []string) int {
	n := 0
	for _, id := range ids {
		if strings.Count(log, "["+id+"] succeeded") > 1 {
			n++
		}
	}
	return n
}

func verdict(err error) string {
	if err == nil {
		return "healthy"
	}
	return fmt.Sprint(err)
}
