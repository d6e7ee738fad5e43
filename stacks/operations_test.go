package stacks_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/tests/declared"
)

func TestDevHasNoOperationsContainers(t *testing.T) {
	r := run(t, "dev", declared.Options{})
	assert.Empty(t, r.ByType(components.OpsServicesType))
}

func TestProdSchedulesBackupsAndServesMetrics(t *testing.T) {
	r := run(t, "prod", declared.Options{})
	img := get(t, r, declared.ImageType, "ops-image")
	build := img["build"].ObjectValue()
	assert.Equal(t, "999", build["args"].ObjectValue()["OPS_UID"].StringValue(), "the ops containers run as the owner of the files they read")
	assert.Equal(t, "1000", build["args"].ObjectValue()["OPS_GID"].StringValue())
	assert.True(t, strings.HasSuffix(build["dockerfile"].StringValue(), "deployment/docker/ops/Dockerfile"), "prebuilt by default: no registry needed")

	backup := get(t, r, declared.ContainerType, "ops-backup")
	assert.Equal(t, []string{"schedule", "--cron", "0 2 * * *", "--dir", "/backups", "--data-dir", "/data", "--retention", "720h"}, strs(backup["command"]))
	assert.Equal(t, "999:1000", backup["user"].StringValue())
	assert.True(t, backup["readOnly"].BoolValue())
	assert.Equal(t, []string{"ALL"}, strs(backup["capabilities"].ObjectValue()["drops"]))
	assert.False(t, backup["envs"].IsSecret(), "no secret in the env: the password is read from a file")
	assert.Equal(t, []string{"REDIS_ADDR=redis:6379", "REDIS_USERNAME=ops", "REDIS_PASSWORD_FILE=/run/redis/ops.password"}, strs(backup["envs"]))
	vols := backup["volumes"].ArrayValue()
	require.Len(t, vols, 3)
	data, run, backups := vols[0].ObjectValue(), vols[1].ObjectValue(), vols[2].ObjectValue()
	assert.Equal(t, "/srv/emailclient/redis", data["hostPath"].StringValue(), "the broker's data, read-only")
	assert.True(t, data["readOnly"].BoolValue())
	assert.Equal(t, "emailclient-prod-redis-run", run["volumeName"].StringValue())
	assert.True(t, run["readOnly"].BoolValue())
	assert.Equal(t, "emailclient-prod-redis-backups", backups["volumeName"].StringValue())
	assert.False(t, backups["readOnly"].HasValue() && backups["readOnly"].BoolValue(), "backups are written")
	assert.True(t, resOf(t, r, "ops-backups").RetainOnDelete, "backups outlive the stack")
	assert.Contains(t, resOf(t, r, "ops-backup").DependsOn, "broker-redis")

	metrics := get(t, r, declared.ContainerType, "ops-metrics")
	assert.Equal(t, []string{"metrics", "--listen", ":9121", "--backup-dir", "/backups"}, strs(metrics["command"]))
	assert.Equal(t, []string{"CMD", "/redis-ops", "healthz", "--url=http://127.0.0.1:9121/healthz"}, strs(metrics["healthcheck"].ObjectValue()["tests"]))
	assert.Equal(t, []string{components.MetricsAlias}, strs(metrics["networksAdvanced"].ArrayValue()[0].ObjectValue()["aliases"]))
	assert.False(t, metrics["ports"].HasValue() && len(metrics["ports"].ArrayValue()) > 0, "no host port unless configured")
	vols = metrics["volumes"].ArrayValue()
	require.Len(t, vols, 1, "the backups only: no run volume (it holds the admin password)")
	assert.Equal(t, "/backups", vols[0].ObjectValue()["containerPath"].StringValue())
	assert.True(t, vols[0].ObjectValue()["readOnly"].BoolValue(), "backups read-only for metrics")
	env := plain(t, metrics["envs"], true)
	monitorPw, opsPw := declared.MockPassword("broker-monitor-password"), declared.MockPassword("broker-ops-password")
	assert.Equal(t, []string{"REDIS_ADDR=redis:6379", "REDIS_USERNAME=monitor", "REDIS_PASSWORD=" + monitorPw}, strs(env))
	for _, in := range metrics.Mappable() {
		assert.NotContains(t, fmt.Sprint(in), opsPw, "no admin password anywhere in the metrics container's inputs")
	}
}

func TestOperationsSettingsAreConfigurable(t *testing.T) {
	r := run(t, "dev", declared.Options{Config: map[string]string{"operations": `{"build":"prebuilt","backup":{"enabled":true,"schedule":"*/5 * * * *","retention":"48h","volume":"b"},"metrics":{"enabled":true,"hostPort":9121}}`}})
	build := get(t, r, declared.ImageType, "ops-image")["build"].ObjectValue()
	assert.Contains(t, build["dockerfile"].StringValue(), "deployment/docker/ops/Dockerfile")
	assert.NotContains(t, build["dockerfile"].StringValue(), "source")
	backup := get(t, r, declared.ContainerType, "ops-backup")
	assert.Contains(t, strs(backup["command"]), "*/5 * * * *")
	assert.Equal(t, "emailclient-dev-redis-data", backup["volumes"].ArrayValue()[0].ObjectValue()["volumeName"].StringValue())
	p := get(t, r, declared.ContainerType, "ops-metrics")["ports"].ArrayValue()[0].ObjectValue()
	assert.Equal(t, "127.0.0.1", p["ip"].StringValue())
	assert.Equal(t, float64(9121), p["external"].NumberValue())
}

func TestBackupRemoteCredentialsStaySecret(t *testing.T) {
	access, secret := "remote-access-key-1", "remote-secret-key-2"
	r := run(t, "prod", declared.Options{
		Config:  map[string]string{"operations": `{"backup":{"enabled":true,"remote":{"enabled":true,"endpoint":"https://s3.example.com:9000","bucket":"redis-backups","region":"eu-1"}}}`},
		Secrets: map[string]string{"backupRemoteAccessKey": access, "backupRemoteSecretKey": secret},
	})
	backup := get(t, r, declared.ContainerType, "ops-backup")
	assert.Equal(t, []string{"schedule", "--cron", "0 2 * * *", "--dir", "/backups", "--data-dir", "/data", "--retention", "720h",
		"--remote-endpoint", "https://s3.example.com:9000", "--remote-bucket", "redis-backups", "--remote-prefix", "emailclient-prod", "--remote-region", "eu-1"},
		strs(backup["command"]), "endpoint, bucket and prefix are plain; the default prefix is the stack's scope")
	assert.True(t, backup["envs"].IsSecret(), "the env holds the credentials: a secret array")
	assert.Equal(t, []string{"REDIS_ADDR=redis:6379", "REDIS_USERNAME=ops", "REDIS_PASSWORD_FILE=/run/redis/ops.password",
		"REDIS_OPS_REMOTE_ACCESS_KEY=" + access, "REDIS_OPS_REMOTE_SECRET_KEY=" + secret}, strs(plain(t, backup["envs"], true)))
	for k, in := range backup.Mappable() {
		if k != "envs" {
			assert.NotContains(t, fmt.Sprint(in), secret, "the secret key only in the secret env, not in %s", k)
		}
	}
	metrics := get(t, r, declared.ContainerType, "ops-metrics")
	assert.NotContains(t, fmt.Sprint(metrics.Mappable()), secret, "the metrics container gets no remote credentials")

	// What redis-ops --stack --remote reads: the target in plain, the keys as a secret.
	out, err := declared.Outputs("prod", declared.Options{
		Config:  map[string]string{"operations": `{"backup":{"enabled":true,"remote":{"enabled":true,"endpoint":"https://s3.example.com:9000","bucket":"redis-backups","region":"eu-1"}}}`},
		Secrets: map[string]string{"backupRemoteAccessKey": access, "backupRemoteSecretKey": secret},
	})
	require.NoError(t, err)
	assert.False(t, out["backupRemote"].Secret)
	assert.Equal(t, map[string]string{"endpoint": "https://s3.example.com:9000", "bucket": "redis-backups", "prefix": "emailclient-prod", "region": "eu-1"}, out["backupRemote"].Value)
	assert.True(t, out["backupRemoteCredentials"].Secret)
	assert.Equal(t, map[string]string{"accessKey": access, "secretKey": secret}, out["backupRemoteCredentials"].Value)
	dev, err := declared.Outputs("dev", declared.Options{})
	require.NoError(t, err)
	assert.NotContains(t, dev, "backupRemote", "no remote, no output")
}

func TestPasswordRotationRegeneratesPasswords(t *testing.T) {
	for _, name := range []string{"broker-celery-password", "broker-ops-password"} {
		before := get(t, run(t, "dev", declared.Options{}), declared.PasswordType, name)
		after := get(t, run(t, "dev", declared.Options{Config: map[string]string{"passwordRotation": "2"}}), declared.PasswordType, name)
		assert.Equal(t, "0", before["keepers"].ObjectValue()["rotation"].StringValue())
		assert.Equal(t, "2", after["keepers"].ObjectValue()["rotation"].StringValue(), "a changed keeper makes the provider generate a new password")
	}
}
