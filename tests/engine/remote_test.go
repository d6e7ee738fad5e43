package engine_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/engine"
	"github.com/emailclient/emailclient-infra/tests/s3test"
)

// setSecret sets a secret config key as an operator does, the value on the CLI's stdin (never its
// command line).
func setSecret(t *testing.T, p *engine.Project, key, value string) {
	t.Helper()
	cmd := exec.Command("pulumi", "config", "set", "--secret", key, "--stack", p.Stack)
	cmd.Dir, cmd.Env, cmd.Stdin = p.Dir, p.Env(), strings.NewReader(value)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "pulumi config set --secret %s: %s", key, out)
}

// buildRedisOps builds the operator's redis-ops from this checkout into a temp dir.
func buildRedisOps(t *testing.T) string {
	t.Helper()
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "redis-ops")
	build := exec.Command("go", "build", "-o", bin, "./deployment/cmd/redis-ops")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// TestRemoteBackupWithEngine (issue 31): a dev stack deployed by the engine with backups every
// minute to a real S3-compatible server (SeaweedFS on this host, reached from the stack's network
// through the Docker gateway), the keys set as Pulumi secrets: the stack's own scheduled backup
// container uploads a backup and its manifest; the secret key is in no plain state, no container
// argument and no log line; `redis-ops list --stack dev --remote` lists it from the stack's outputs;
// after FLUSHALL, `redis-ops restore --stack dev --remote latest` brings every key back.
func TestRemoteBackupWithEngine(t *testing.T) {
	engine.Require(t)
	s3 := s3test.Start(t)
	bucket := s3.MakeBucket(t)
	p, sfx, port := newDevStack(t)
	p.SetPaths(map[string]string{
		"operations.backup.enabled":         "true",
		"operations.backup.schedule":        "* * * * *",
		"operations.backup.volume":          sfx + "-backups",
		"operations.backup.remote.enabled":  "true",
		"operations.backup.remote.endpoint": s3.ContainerEndpoint(t),
		"operations.backup.remote.bucket":   bucket,
		"operations.backup.remote.prefix":   sfx,
	})
	setSecret(t, p, "backupRemoteAccessKey", s3test.AccessKey)
	setSecret(t, p, "backupRemoteSecretKey", s3test.SecretKey)
	p.Up()
	redisName := p.Output("redisContainer")
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), Username: "ops", Password: p.Output("opsPassword")})
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	const keys = 500
	pipe := client.Pipeline()
	for i := range keys {
		pipe.Set(ctx, "engine:remote:"+strconv.Itoa(i), i, time.Duration(i%2)*time.Hour)
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	written := time.Now()

	// The scheduled container's next run (each minute) after the keys were written uploads them.
	start := time.Now()
	var manifest string
	require.Eventually(t, func() bool {
		for _, o := range s3.Objects(t, bucket, sfx+"/") {
			name, ok := strings.CutSuffix(filepath.Base(o), ".manifest.json")
			taken, err := time.Parse("20060102T150405.000Z", strings.TrimPrefix(name, "redis-backup-"))
			if ok && err == nil && taken.After(written) {
				manifest = o
				return true
			}
		}
		return false
	}, 150*time.Second, time.Second, "no backup taken after the writes reached the remote from the scheduled container")
	t.Logf("FIGURE remote backup with the real engine: the scheduled container's upload reached the remote %s after the deploy (schedule: every minute): %s",
		time.Since(start).Round(time.Second), manifest)
	logs, _ := exec.Command("docker", "logs", redisName+"-backup").CombinedOutput()
	assert.Contains(t, string(logs), "backup ok file=", "the scheduled run's line")
	assert.NotContains(t, string(logs), s3test.SecretKey)
	args, _ := exec.Command("docker", "inspect", "--format", "{{json .Args}}", redisName+"-backup").Output()
	assert.Contains(t, string(args), "--remote-endpoint", "endpoint, bucket and prefix on the command line")
	assert.NotContains(t, string(args), s3test.SecretKey, "the secret key never on the command line")
	assert.NotContains(t, string(p.StateFile()), s3test.SecretKey, "the secret key never in plain state")

	bin := buildRedisOps(t)
	ops := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = p.Dir, p.Env()
		out, err := cmd.CombinedOutput()
		assert.NotContains(t, string(out), s3test.SecretKey)
		return string(out), err
	}
	// The backup scheduler's endpoint is the Docker gateway's address, which this host reaches too.
	out, err := ops("list", "--stack", p.Stack, "--remote")
	t.Logf("redis-ops list --stack %s --remote:\n%s", p.Stack, out)
	require.NoError(t, err)
	assert.Contains(t, out, strings.TrimSuffix(filepath.Base(manifest), ".manifest.json")+".rdb")
	assert.Contains(t, out, "remote-ok")

	require.NoError(t, client.FlushAll(ctx).Err())
	start = time.Now()
	out, err = ops("restore", "--stack", p.Stack, "--remote", "latest")
	t.Logf("redis-ops restore --stack %s --remote latest (%s):\n%s", p.Stack, time.Since(start).Round(100*time.Millisecond), out)
	require.NoError(t, err)
	for _, i := range []int{0, 1, 250, keys - 1} {
		v, err := client.Get(ctx, "engine:remote:"+strconv.Itoa(i)).Result()
		assert.NoError(t, err, "key %d after the restore from the remote", i)
		assert.Equal(t, strconv.Itoa(i), v)
	}
	back, err := client.Keys(ctx, "engine:remote:*").Result()
	require.NoError(t, err)
	assert.Len(t, back, keys, "every key back")
}
