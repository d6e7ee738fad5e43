package celerytest_test

import (
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/tests/celerytest"
)

// BenchmarkThroughput reports tasks/s for enqueue and for the full round trip
// (enqueue, worker, result) of 500 send_email tasks through a real
// redis-server, with the email-service settings (concurrency 4, prefetch 1,
// acks_late). The baseline, measured in the same run against the same
// broker, is Celery's defaults (prefetch 4, early ack); the ratio shows what
// the safe settings cost. Figures are printed, not asserted.
//
//	go test -run '^$' -bench Throughput -benchtime 1x ./tests/celerytest/
func BenchmarkThroughput(b *testing.B) {
	const tasks = 500
	br := startBroker(b, "bench-password-0123456789abcdef")
	env := with(br.env, "CELERY_LOG_LEVEL", "warning") // per-task log lines would dominate
	baseline := with(with(with(env,
		"CELERY_WORKER_PREFETCH_MULTIPLIER", "4"),
		"CELERY_TASK_ACKS_LATE", "false"),
		"CELERY_TASK_REJECT_ON_WORKER_LOST", "false")

	measure := func(env map[string]string) (enqueue, roundtrip float64) {
		w := celerytest.StartWorker(b, env)
		defer w.Stop()
		celerytest.Send(b, env, 20, time.Minute) // warm up the pool
		for i := 0; i < b.N; i++ {
			res := celerytest.Send(b, env, tasks, 5*time.Minute)
			if res.Completed != tasks {
				b.Fatalf("%d of %d completed (failed %d, pending %d)", res.Completed, tasks, res.Failed, res.Pending)
			}
			enqueue += res.EnqueuePerSecond() / float64(b.N)
			roundtrip += res.RoundtripPerSecond() / float64(b.N)
		}
		return enqueue, roundtrip
	}
	baseEnq, baseRT := measure(baseline)
	enq, rt := measure(env)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(enq, "enqueue-tasks/s")
	b.ReportMetric(rt, "roundtrip-tasks/s")
	b.ReportMetric(baseEnq, "baseline-enqueue-tasks/s")
	b.ReportMetric(baseRT, "baseline-roundtrip-tasks/s")
	b.ReportMetric(rt/baseRT, "roundtrip-vs-baseline")
	b.Logf("%d tasks: enqueue %.0f/s, round trip %.0f/s; Celery defaults: %.0f/s, %.0f/s (round trip ratio %.2f)",
		tasks, enq, rt, baseEnq, baseRT, rt/baseRT)
}
