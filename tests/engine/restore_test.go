package engine_test

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRestoreWithStack (issue 17): a dev stack with backups on, deployed (Automation API); keys with
// TTLs; a network backup in the stack's backup container; FLUSHALL; then `redis-ops restore --stack
// dev --from-backups NAME` as the operator's guide gives it: the containers from the stack's outputs
// (the backup container by its name), the engine from its docker:host, every key and TTL back, the
// email-service and the backup scheduler running again and tasks going through.
func TestRestoreWithStack(t *testing.T) {
	p, sfx, port := newDevStack(t)
	p.SetPath("operations.backup.enabled", "true")
	p.SetPath("operations.backup.schedule", "0 3 1 1 *") // not during the test
	p.SetPath("operations.backup.volume", sfx+"-backups")
	p.Up()
	redisName, email := p.Output("redisContainer"), p.Output("emailServiceContainer")
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), Username: "ops", Password: p.Output("opsPassword")})
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()

	const keys = 1000
	pipe := client.Pipeline()
	for i := range keys {
		ttl := time.Duration(0)
		if i%2 == 0 {
			ttl = time.Duration(i+1) * time.Minute
		}
		pipe.Set(ctx, "engine:restore:"+strconv.Itoa(i), i, ttl)
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	beforeKeys, err := client.Keys(ctx, "*").Result() // ours and the email-service's kombu bindings
	require.NoError(t, err)

	b, err := exec.Command("docker", "exec", redisName+"-backup", "/redis-ops", "backup", "--source", "network", "--dir", "/backups").CombinedOutput()
	require.NoError(t, err, "backup in the backup container: %s", b)
	m := regexp.MustCompile(`backup /backups/(redis-backup-\S+\.rdb) `).FindStringSubmatch(string(b))
	require.NotNil(t, m, "backup output: %s", b)
	require.NoError(t, client.FlushAll(ctx).Err())

	// The operator's command, in the project directory with its Pulumi environment.
	bin := buildRedisOps(t)
	restore := exec.Command(bin, "restore", "--stack", p.Stack, "--from-backups", m[1])
	restore.Dir = p.Dir
	restore.Env = p.Env() // the project's backend and passphrase, as the operator's shell has them
	start := time.Now()
	rout, err := restore.CombinedOutput()
	took := time.Since(start)
	t.Logf("redis-ops restore --stack %s --from-backups %s:\n%s", p.Stack, m[1], rout)
	require.NoError(t, err)
	assert.NotContains(t, string(rout), p.Output("opsPassword"))
	assert.Contains(t, string(rout), "[8/8] started "+redisName+"-backup, "+email+"; marker removed", "the writers from the stack's outputs")

	// The tool compares the restored key count with the backup's before it starts the writers again.
	// The email-service's worker writes keys of its own at any time (kombu's unacked index, a
	// binding), before the backup and after the restart, so the keys are then compared by name: every
	// key of ours and every binding is back, and any other key is the worker's own.
	m = regexp.MustCompile(`key count (\d+): matches the backup`).FindStringSubmatch(string(rout))
	require.NotNil(t, m, "the tool checks the restored key count against the backup")
	checked, _ := strconv.Atoi(m[1])
	assert.GreaterOrEqual(t, checked, keys, "the restored key count the tool checked")
	afterKeys, err := client.Keys(ctx, "*").Result()
	require.NoError(t, err)
	after := int64(len(afterKeys))
	present := make(map[string]bool, len(afterKeys))
	for _, k := range afterKeys {
		present[k] = true
	}
	for _, k := range beforeKeys {
		if strings.HasPrefix(k, "engine:restore:") || strings.HasPrefix(k, "_kombu.binding.") {
			assert.True(t, present[k], "key %q lost by the restore", k)
		}
		delete(present, k)
	}
	for k := range present {
		assert.Regexp(t, `^(_kombu\.|unacked|celery)`, k, "a key after the restore that was not in the backup and is not the worker's own")
		t.Logf("written by the restarted worker after the restore: %s", k)
	}
	for _, i := range []int{0, 2, 500, 998} {
		ttl := client.TTL(ctx, "engine:restore:"+strconv.Itoa(i)).Val()
		want := time.Duration(i+1) * time.Minute
		assert.True(t, ttl <= want && ttl > want-5*time.Minute, "key %d: ttl %v, want about %v", i, ttl, want)
	}
	assert.Equal(t, time.Duration(-1), client.TTL(ctx, "engine:restore:1").Val(), "a key without a TTL keeps none")
	for _, c := range []string{email, redisName + "-backup"} {
		st, _ := exec.Command("docker", "inspect", "--format", "{{.State.Status}}", c).Output()
		assert.Equal(t, "running", strings.TrimSpace(string(st)), c)
	}
	roundTrip(t, email)
	t.Logf("FIGURE restore --stack dev --from-backups with the real engine: %d keys (%d with a TTL) back in %s",
		after, keys/2, took.Round(100*time.Millisecond))
}
