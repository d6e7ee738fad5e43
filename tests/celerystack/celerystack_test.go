// Package celerystack runs a real Celery worker and client with exactly the environment the program
// declares for the email-service container, against a real redis-server running the declared
// redis.conf and ACL file: the real-Celery tier.
package celerystack_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

// declaredEnv returns the email-service container's declared env, with the Redis address moved from
// the container network (redis:6379) to the test's server; nothing else is changed.
func declaredEnv(t *testing.T, opts declared.Options, b *realredis.Broker) map[string]string {
	t.Helper()
	r, err := declared.Run("dev", opts)
	require.NoError(t, err)
	c, ok := r.Get(declared.ContainerType, "email-service-container")
	require.True(t, ok)
	require.True(t, c.Inputs["envs"].IsSecret(), "the env array is secret")
	env := map[string]string{}
	for _, kv := range c.Inputs["envs"].SecretValue().Element.ArrayValue() {
		k, v, _ := strings.Cut(kv.StringValue(), "=")
		env[k] = v
	}
	for _, key := range []string{"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"} {
		u, err := url.Parse(env[key])
		require.NoError(t, err)
		require.Equal(t, "redis:6379", u.Host, "%s points at the redis alias", key)
		// A string replacement: re-encoding the URL in Go would change how the password is escaped.
		env[key] = strings.Replace(env[key], "@redis:6379/", "@127.0.0.1:"+strconv.Itoa(b.Port())+"/", 1)
	}
	return env
}

func TestTaskRoundTripsWithTheDeclaredEnv(t *testing.T) {
	celerytest.Require(t)
	b := realredis.Start(t, "dev", realredis.Options{})
	env := declaredEnv(t, declared.Options{}, b)
	celerytest.StartWorker(t, env)
	res := celerytest.Send(t, env, 20, 90*time.Second)
	require.Empty(t, res.Error)
	assert.Equal(t, 20, res.Completed, "every task round-trips: %+v", res.Errors)
	assert.Equal(t, 0, res.ResultDB)
	assert.Equal(t, []int{0}, res.ResultKeyDBs, "results land in db 0 only")
	assert.InDelta(t, 86400, res.ResultTTL, 120, "results expire after about 24h")
	assert.NotContains(t, res.Stdout, b.Celery, "no password in the client's output")
	t.Logf("FIGURE celery: 20 tasks, enqueue %.0f/s, round trip %.0f/s", res.EnqueuePerSecond(), res.RoundtripPerSecond())

	// The celery user's allow-list covered everything Celery did.
	acl, err := b.Client(t, redisconf.OpsUser).Do(realredis.Ctx(t), "acl", "log").Slice()
	require.NoError(t, err)
	assert.Empty(t, acl, "no ACL denials for the celery user")
}

func TestURLSpecialPasswordRoundTrips(t *testing.T) {
	celerytest.Require(t)
	pw := "p@ss:w/rd#?%&=+~[]!$'()*,;-0123456789abcdefXYZ"
	opts := declared.Options{Secrets: map[string]string{"password": pw}}
	b := realredis.Start(t, "dev", realredis.Options{Secrets: opts.Secrets})
	env := declaredEnv(t, opts, b)
	celerytest.StartWorker(t, env)
	res := celerytest.Send(t, env, 5, 90*time.Second)
	require.Empty(t, res.Error)
	assert.Equal(t, 5, res.Completed)
	assert.NotContains(t, res.Stdout, pw)

	// Without the password nothing works: no silent fallback to an unauthenticated localhost.
	noPassword := "redis://celery@127.0.0.1:" + strconv.Itoa(b.Port()) + "/0"
	bad := map[string]string{}
	for k, v := range env {
		bad[k] = v
	}
	bad["CELERY_BROKER_URL"], bad["CELERY_RESULT_BACKEND"] = noPassword, noPassword
	res, err := celerytest.RunClient(bad, 20*time.Second, "send", "--count", "1", "--timeout", "10")
	require.NoError(t, err)
	assert.NotEqual(t, 1, res.Completed, "no task runs without the password")
}

func TestQueueAndBindingsSurviveMemoryPressure(t *testing.T) {
	celerytest.Require(t)
	// The declared policy with a small maxmemory; results carry the declared TTL.
	b := realredis.Start(t, "dev", realredis.Options{Args: []string{"--maxmemory", "4mb"}})
	env := declaredEnv(t, declared.Options{}, b)
	// Enqueue with no worker: the queue grows until memory is exhausted; publishing must then fail
	// loudly rather than tasks vanishing.
	res, err := celerytest.RunClient(env, 120*time.Second, "enqueue", "--count", "20000")
	require.NoError(t, err)
	ops := b.Client(t, redisconf.OpsUser)
	ctx := realredis.Ctx(t)
	queued, err := ops.LLen(ctx, "celery").Result()
	require.NoError(t, err)
	bindings, err := ops.Exists(ctx, "_kombu.binding.celery").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), bindings, "the binding key is kept")
	require.Greater(t, queued, int64(0), "tasks were queued before memory ran out")
	t.Logf("FIGURE memory pressure: sent=%d queued=%d error=%q", res.Sent, queued, firstLine(res.Error))
	if res.Error == "" {
		assert.Equal(t, int64(res.Sent), queued, "every acknowledged publish is queued")
	} else {
		assert.Contains(t, res.Error, "OOM", "publishing fails loudly")
		assert.GreaterOrEqual(t, queued, int64(res.Sent), "every publish acknowledged before the error is queued")
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
