package celerytest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/tests/celerytest"
)

// heartbeatEnv is env with a one-second heartbeat and the watchdog at stall seconds (0: off), so
// that the checks below take seconds instead of minutes.
func heartbeatEnv(env map[string]string, stall int) map[string]string {
	out := with(env, "EMAILWORKER_HEARTBEAT_SECONDS", "1")
	return with(out, "EMAILWORKER_STALL_EXIT_SECONDS", fmt.Sprint(stall))
}

// TestHeartbeat checks the image's healthcheck (emailworker-alive, which reads the heartbeat file
// the worker writes when it takes its own heartbeat task from Redis) and the stall watchdog with a
// real worker and redis-server.
func TestHeartbeat(t *testing.T) {
	t.Run("alive while consuming, unhealthy once the worker is gone", func(t *testing.T) {
		b := startBroker(t, "heartbeat-password-0123456789abcdef")
		w := celerytest.StartWorker(t, heartbeatEnv(b.env, 0))
		if err := w.WaitAlive(15 * time.Second); err != nil {
			t.Fatalf("a consuming worker is not alive: %v", err)
		}
		if n := strings.Count(w.Log(), "emailworker.tasks.heartbeat["); n > 0 {
			t.Errorf("the worker log has %d heartbeat task lines; they are filtered out", n)
		}
		w.Kill()
		start := time.Now()
		for w.Alive() == nil {
			if time.Since(start) > 30*time.Second {
				t.Fatal("still alive 30s after the worker was killed")
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("unhealthy %.1fs after the worker was killed (max age: 3 heartbeats + 5s): %v", time.Since(start).Seconds(), w.Alive())
	})

	t.Run("a worker busy in every process stays alive and is not stopped", func(t *testing.T) {
		b := startBroker(t, "heartbeat-password-0123456789abcdef")
		env := with(heartbeatEnv(b.env, 3), "CELERY_WORKER_CONCURRENCY", "1")
		w := celerytest.StartWorker(t, env)
		if err := w.WaitAlive(15 * time.Second); err != nil {
			t.Fatal(err)
		}
		long := celerytest.Client(t, env, time.Minute, "enqueue", "--count", "1", "--task", "sleep_then_send", "--seconds", "10")
		if long.Error != "" {
			t.Fatal(long.Error)
		}
		deadline := time.Now().Add(9 * time.Second)
		for time.Now().Before(deadline) {
			if err := w.Alive(); err != nil {
				t.Fatalf("unhealthy while its only process runs a task: %v", err)
			}
			select {
			case <-w.Done():
				t.Fatalf("the watchdog stopped a busy worker:\n%s", w.Log())
			case <-time.After(500 * time.Millisecond):
			}
		}
		got := celerytest.Collect(t, env, long.TaskIDs, 30*time.Second)
		if got.Completed != 1 {
			t.Fatalf("the 10s task did not complete: %+v", got)
		}
	})

	t.Run("a stalled worker stops itself so that the restart policy replaces it", func(t *testing.T) {
		b := startBroker(t, "heartbeat-password-0123456789abcdef")
		env := heartbeatEnv(b.env, 4)
		w := celerytest.StartWorker(t, env)
		if err := w.WaitAlive(15 * time.Second); err != nil {
			t.Fatal(err)
		}
		queued := celerytest.Enqueue(t, env, 5)
		if got := celerytest.Collect(t, env, queued.TaskIDs, 30*time.Second); got.Completed != 5 {
			t.Fatalf("before the stall: %+v", got)
		}
		// CLIENT PAUSE holds every client's commands: the worker takes nothing from Redis, as in a
		// consumer stalled after a broker restart (celery#8030), while its process runs on.
		admin := b.server.Client(t, "celery", b.password)
		if err := admin.Do(context.Background(), "CLIENT", "PAUSE", "15000", "ALL").Err(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		select {
		case <-w.Done():
		case <-time.After(60 * time.Second):
			t.Fatalf("the stalled worker did not stop itself within 60s:\n%s", w.Log())
		}
		t.Logf("the stalled worker stopped itself %.1fs after the pause (watchdog 4s, heartbeat 1s); exit: %v", time.Since(start).Seconds(), w.WaitErr())
		if !strings.Contains(w.Log(), "stopping so that the restart policy starts a fresh worker") {
			t.Errorf("the worker log does not say why it stopped:\n%s", w.Log())
		}
		// The watchdog marks the heartbeat file "stalled" when it gives up, so the healthcheck fails
		// at once, not only when the last heartbeat ages past its limit (3 heartbeats + 5s, which a
		// quick shutdown beat).
		if err := w.Alive(); err == nil {
			t.Error("the healthcheck passes for a stalled, stopped worker")
		} else if !strings.Contains(err.Error(), "is stopping") {
			t.Errorf("the healthcheck does not say the stalled worker is stopping: %v", err)
		}
		_ = admin.Do(context.Background(), "CLIENT", "UNPAUSE").Err()
		// What Docker's restart policy does with the exited container.
		w.Restart(t)
		more := celerytest.Enqueue(t, env, 5)
		if got := celerytest.Collect(t, env, more.TaskIDs, 30*time.Second); got.Completed != 5 {
			t.Fatalf("after the restart: %+v", got)
		}
		if err := w.WaitAlive(15 * time.Second); err != nil {
			t.Errorf("the restarted worker is not alive: %v", err)
		}
	})
}
