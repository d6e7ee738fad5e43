package celerystack_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

// TestPasswordRotationKeepsQueuedTasks rotates both passwords the way a deploy does (new runtime files,
// Redis restarted on the same data, the email-service restarted with its new env) while tasks are
// queued, and checks that none is lost, the worker works with the new URL and the old one is refused.
func TestPasswordRotationKeepsQueuedTasks(t *testing.T) {
	celerytest.Require(t)
	before := map[string]string{"password": "rotation-before-0123456789abcdef", "opsPassword": "rotation-before-ops-0123456789ab"}
	after := map[string]string{"password": "rotation-after-0123456789abcdefg", "opsPassword": "rotation-after-ops-0123456789abc"}
	b := realredis.Start(t, "dev", realredis.Options{Secrets: before})
	oldEnv := declaredEnv(t, declared.Options{Secrets: before}, b)

	const n = 50
	queued := celerytest.Enqueue(t, oldEnv, n) // no worker yet: the tasks wait in Redis
	require.Len(t, queued.TaskIDs, n)

	b.Redeploy(t, "dev", realredis.Options{Secrets: after})
	newEnv := declaredEnv(t, declared.Options{Secrets: after}, b)
	require.NotEqual(t, oldEnv["CELERY_BROKER_URL"], newEnv["CELERY_BROKER_URL"])

	celerytest.StartWorker(t, newEnv)
	done := celerytest.Collect(t, newEnv, queued.TaskIDs, 90*time.Second)
	assert.Equal(t, n, done.Completed, "every task queued before the rotation ran after it (lost: %d)", n-done.Completed)
	fresh := celerytest.Send(t, newEnv, 5, 60*time.Second)
	assert.Equal(t, 5, fresh.Completed, "the worker works with the new URL")
	t.Logf("FIGURE rotation: %d of %d tasks queued before the rotation completed after it", done.Completed, n)

	stale, err := celerytest.RunClient(oldEnv, 20*time.Second, "send", "--count", "1", "--timeout", "5")
	require.NoError(t, err)
	assert.NotEqual(t, 1, stale.Completed, "the old password is refused")
}
