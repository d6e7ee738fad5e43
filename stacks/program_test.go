package stacks_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/declared"
)

func run(t *testing.T, stack string, opts declared.Options) *declared.Result {
	t.Helper()
	r, err := declared.Run(stack, opts)
	require.NoError(t, err)
	return r
}

func get(t *testing.T, r *declared.Result, typ, name string) resource.PropertyMap {
	t.Helper()
	res, ok := r.Get(typ, name)
	require.True(t, ok, "%s %s is declared", typ, name)
	return res.Inputs
}

// plain unwraps a secret; it fails the test if want secret and the value is not.
func plain(t *testing.T, v resource.PropertyValue, wantSecret bool) resource.PropertyValue {
	t.Helper()
	if wantSecret {
		require.True(t, v.IsSecret(), "value must be secret")
		return v.SecretValue().Element
	}
	return v
}

func strs(v resource.PropertyValue) []string {
	var out []string
	for _, e := range v.ArrayValue() {
		out = append(out, e.StringValue())
	}
	return out
}

func envMap(t *testing.T, container resource.PropertyMap) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, kv := range strs(plain(t, container["envs"], true)) {
		k, v, ok := strings.Cut(kv, "=")
		require.True(t, ok, kv)
		env[k] = v
	}
	return env
}

func TestEveryChildIsParentedToItsComponent(t *testing.T) {
	for _, stack := range []string{"dev", "prod"} {
		r := run(t, stack, declared.Options{})
		for _, res := range r.Resources {
			switch {
			case strings.HasPrefix(res.Type, "emailclient:"):
				assert.Equal(t, stacks.Project+"-"+stack, res.Parent, "%s is a top-level component", res.Name)
			case strings.HasPrefix(res.Name, "broker-"):
				assert.Equal(t, "broker", res.Parent, res.Name)
			case strings.HasPrefix(res.Name, "email-service-"):
				assert.Equal(t, "email-service", res.Parent, res.Name)
			case strings.HasPrefix(res.Name, "ops-"):
				assert.Equal(t, "ops", res.Parent, res.Name)
			default:
				t.Errorf("%s %s: unexpected resource", res.Type, res.Name)
			}
		}
	}
}

func TestRedisImageBuildsFromTheDeploymentDirectory(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	for stack, base := range map[string]string{"dev": "redis:7-alpine", "prod": "redis:7-alpine"} {
		r := run(t, stack, declared.Options{})
		img := get(t, r, declared.ImageType, "broker-image")
		assert.Equal(t, "emailclient-redis:"+stack, img["imageName"].StringValue())
		assert.True(t, img["skipPush"].BoolValue())
		build := img["build"].ObjectValue()
		assert.Equal(t, filepath.Join(r.Root, stacks.RedisBuildContext), filepath.Join(wd, build["context"].StringValue()), "the build context, relative to the working directory")
		assert.False(t, filepath.IsAbs(build["context"].StringValue()), "no checkout path in state")
		assert.Equal(t, filepath.Join(build["context"].StringValue(), "Dockerfile"), build["dockerfile"].StringValue())
		assert.Equal(t, map[string]any{"BASE_IMAGE": base, "REDIS_UID": "999", "REDIS_GID": "1000"}, build["args"].Mappable())
		assert.Equal(t, "linux/amd64", build["platform"].StringValue())
	}
	img := get(t, run(t, "dev", declared.Options{Config: map[string]string{"container": `{"baseImage":"local/redis-base:bookworm"}`}}), declared.ImageType, "broker-image")
	assert.Equal(t, "local/redis-base:bookworm", img["build"].ObjectValue()["args"].ObjectValue()["BASE_IMAGE"].StringValue())
}

func TestRedisContainerDev(t *testing.T) {
	r := run(t, "dev", declared.Options{})
	c := get(t, r, declared.ContainerType, "broker-redis")
	assert.Equal(t, "emailclient-dev-redis", c["name"].StringValue())
	assert.Equal(t, declared.MockImageID("broker-image"), c["image"].StringValue(), "runs the built image's ID, so a rebuild replaces the container")
	assert.Equal(t, []string{redisconf.ConfigFile}, strs(c["command"]))
	assert.Equal(t, "999:1000", c["user"].StringValue(), "non-root, the uid the image gives /data and /run/redis")
	assert.Equal(t, "unless-stopped", c["restart"].StringValue())
	assert.True(t, c["readOnly"].BoolValue())
	assert.Equal(t, "rw,noexec,nosuid,size=16m", c["tmpfs"].ObjectValue()["/tmp"].StringValue())
	assert.Equal(t, []string{"ALL"}, strs(c["capabilities"].ObjectValue()["drops"]))
	assert.Equal(t, []string{"no-new-privileges:true"}, strs(c["securityOpts"]))
	assert.True(t, c["wait"].BoolValue(), "up waits for healthy")

	hc := c["healthcheck"].ObjectValue()
	assert.Equal(t, []string{"CMD", components.HealthcheckCommand}, strs(hc["tests"]))
	assert.Equal(t, "3.5s", hc["interval"].StringValue())
	assert.Equal(t, "3s", hc["timeout"].StringValue())
	assert.Equal(t, float64(3), hc["retries"].NumberValue())
	assert.Equal(t, "30s", hc["startPeriod"].StringValue())
	assert.False(t, hc["startInterval"].HasValue(), "not declared by default: Docker 20.10 drops it, a diff on every preview")

	assert.Equal(t, "json-file", c["logDriver"].StringValue())
	assert.Equal(t, map[string]any{"max-size": "10m", "max-file": "3"}, c["logOpts"].Mappable())

	vols := c["volumes"].ArrayValue()
	require.Len(t, vols, 2)
	assert.Equal(t, "emailclient-dev-redis-data", vols[0].ObjectValue()["volumeName"].StringValue())
	assert.Equal(t, "/data", vols[0].ObjectValue()["containerPath"].StringValue())
	assert.Equal(t, "emailclient-dev-redis-run", vols[1].ObjectValue()["volumeName"].StringValue())
	assert.Equal(t, redisconf.RunDir, vols[1].ObjectValue()["containerPath"].StringValue())
	assert.True(t, vols[1].ObjectValue()["readOnly"].BoolValue(), "Redis reads its files; only the carrier writes them")
	assert.True(t, c["readOnly"].BoolValue(), "read-only root filesystem")

	nets := c["networksAdvanced"].ArrayValue()
	require.Len(t, nets, 1)
	assert.Equal(t, "emailclient-dev-net", nets[0].ObjectValue()["name"].StringValue())
	assert.Equal(t, []string{"redis"}, strs(nets[0].ObjectValue()["aliases"]))

	ports := c["ports"].ArrayValue()
	require.Len(t, ports, 1, "dev publishes Redis")
	p := ports[0].ObjectValue()
	assert.Equal(t, "127.0.0.1", p["ip"].StringValue(), "on loopback only")
	assert.Equal(t, float64(6379), p["internal"].NumberValue())
	assert.Equal(t, float64(6379), p["external"].NumberValue())

	assert.Equal(t, float64(0), c["memory"].NumberValue(), "no limit in dev")
	assert.Equal(t, []string{"healthcheck"}, resOf(t, r, "broker-redis").ReplaceOnChanges)
	assert.True(t, resOf(t, r, "broker-redis").DeleteBeforeReplace)
}

func resOf(t *testing.T, r *declared.Result, name string) declared.Resource {
	t.Helper()
	for _, res := range r.Resources {
		if res.Name == name {
			return res
		}
	}
	t.Fatalf("%s not declared", name)
	return declared.Resource{}
}

func TestRedisContainerProd(t *testing.T) {
	r := run(t, "prod", declared.Options{})
	c := get(t, r, declared.ContainerType, "broker-redis")
	assert.False(t, c["ports"].HasValue() && len(c["ports"].ArrayValue()) > 0, "prod publishes no host port")
	assert.Equal(t, float64(2048), c["memory"].NumberValue(), "2gb limit in MB")
	assert.Equal(t, float64(2048), c["memorySwap"].NumberValue(), "no swap")
	assert.Equal(t, float64(1024), c["memoryReservation"].NumberValue())
	assert.Equal(t, "2.0", c["cpus"].StringValue(), "as the provider reads it back: no replace on every up")
	assert.Equal(t, float64(512), c["cpuShares"].NumberValue())
	assert.Equal(t, map[string]any{"max-size": "100m", "max-file": "10"}, c["logOpts"].Mappable())
	vols := c["volumes"].ArrayValue()
	require.Len(t, vols, 2)
	assert.Equal(t, "/srv/emailclient/redis", vols[0].ObjectValue()["hostPath"].StringValue(), "data on the host path")
	assert.Equal(t, "/data", vols[0].ObjectValue()["containerPath"].StringValue())
	_, hasDataVolume := r.Get(declared.VolumeType, "broker-data")
	assert.False(t, hasDataVolume, "no named data volume with a host path")

	uploads := uploadsOf(t, r, "broker-redis")
	conf := uploads[redisconf.ConfigFile]
	assert.Contains(t, conf, "\nmaxmemory 1gb\n")
	assert.Contains(t, conf, "\nmaxmemory-policy volatile-lru\n")
}

func TestDataVolumeOutlivesTheStack(t *testing.T) {
	r := run(t, "dev", declared.Options{})
	v := resOf(t, r, "broker-data")
	assert.True(t, v.RetainOnDelete, "destroy never deletes queued tasks")
	assert.Equal(t, "emailclient-dev-redis-data", v.Inputs["name"].StringValue())
	n := resOf(t, r, "broker-network")
	assert.Equal(t, "emailclient-dev-net", n.Inputs["name"].StringValue())
	assert.True(t, n.DeleteBeforeReplace)
}

// uploadsOf returns the files placed in the run volume of the Redis container named node: the uploads
// of its files carrier, which must be secret, read-only files, and a carrier that never runs.
func uploadsOf(t *testing.T, r *declared.Result, node string) map[string]string {
	t.Helper()
	carrier := get(t, r, declared.ContainerType, components.FilesCarrier(node))
	assert.False(t, carrier["start"].BoolValue(), "the carrier is created, never started")
	assert.Equal(t, "none", carrier["networkMode"].StringValue())
	for _, u := range plain(t, carrier["uploads"], true).ArrayValue() {
		assert.Equal(t, "0444", u.ObjectValue()["permissions"].StringValue())
	}
	c := get(t, r, declared.ContainerType, node)
	assert.False(t, c["uploads"].HasValue(), "Redis's own root is read-only: the provider cannot upload into it")
	labels := c["labels"].ArrayValue()
	require.Len(t, labels, 1)
	assert.Equal(t, components.FilesLabel, labels[0].ObjectValue()["label"].StringValue(), "a new carrier replaces Redis")
	files, _ := r.RunFiles(node)
	return files
}

func TestRuntimeFilesCarryOnlyHashesExceptTheHealthcheckPassword(t *testing.T) {
	r := run(t, "dev", declared.Options{})
	uploads := uploadsOf(t, r, "broker-redis")
	require.Len(t, uploads, 4)
	celeryPw := declared.MockPassword("broker-celery-password")
	opsPw := declared.MockPassword("broker-ops-password")
	monitorPw := declared.MockPassword("broker-monitor-password")
	assert.Contains(t, uploads[redisconf.ACLFile], "user monitor on resetkeys %R~* resetchannels -@all +ping ")
	assert.Contains(t, uploads[redisconf.ACLFile], "#"+redisconf.PasswordHash(monitorPw))
	assert.NotContains(t, uploads[redisconf.ACLFile], monitorPw)
	assert.Equal(t, monitorPw, uploads[redisconf.MonitorPasswordFile], "the healthcheck's")
	acl := uploads[redisconf.ACLFile]
	assert.Contains(t, acl, "user default off resetpass")
	assert.Contains(t, acl, "user celery on ")
	assert.Contains(t, acl, "#"+redisconf.PasswordHash(celeryPw))
	assert.Contains(t, acl, "#"+redisconf.PasswordHash(opsPw))
	assert.NotContains(t, acl, celeryPw)
	assert.NotContains(t, acl, opsPw)
	assert.Equal(t, opsPw, uploads[redisconf.OpsPasswordFile])
	conf := uploads[redisconf.ConfigFile]
	assert.Equal(t, redisconf.Defaults().Render()[:40], conf[:40])
	assert.NotContains(t, conf, celeryPw)
	assert.NotContains(t, conf, "requirepass")
	assert.Contains(t, conf, "\nloglevel debug\n", "dev logs at debug")
}

func TestGeneratedPasswordsAreURLSafeAndLong(t *testing.T) {
	r := run(t, "prod", declared.Options{})
	pws := r.ByType(declared.PasswordType)
	require.Len(t, pws, 3, "celery, ops, monitor")
	for _, pw := range pws {
		assert.Equal(t, float64(components.GeneratedPasswordLength), pw.Inputs["length"].NumberValue())
		assert.GreaterOrEqual(t, components.GeneratedPasswordLength, 32)
		assert.False(t, pw.Inputs["special"].BoolValue(), "letters and digits only")
	}
}

func TestEmailServiceDev(t *testing.T) {
	r := run(t, "dev", declared.Options{})
	img := get(t, r, declared.ImageType, "email-service-image")
	build := img["build"].ObjectValue()
	assert.Equal(t, "../"+stacks.WorkerBuildContext, build["context"].StringValue(), "relative to the working directory")
	assert.Equal(t, "python:3.12-slim", build["args"].ObjectValue()["BASE_IMAGE"].StringValue())

	c := get(t, r, declared.ContainerType, "email-service-container")
	assert.Equal(t, declared.MockImageID("email-service-image"), c["image"].StringValue())
	assert.Equal(t, "emailclient-dev-email-service", c["name"].StringValue())
	assert.Equal(t, "emailclient-dev-net", c["networksAdvanced"].ArrayValue()[0].ObjectValue()["name"].StringValue())
	assert.NotContains(t, resOf(t, r, "email-service-container").DependsOn, "broker-redis",
		"dev: emailService.waitForRedis is false, the worker starts alongside Redis")
	assert.True(t, c["wait"].BoolValue(), "`pulumi up` still waits for the worker's probe, a task taken from Redis")
	assert.True(t, get(t, r, declared.ContainerType, "broker-redis")["wait"].BoolValue(), "and for Redis's own")

	env := envMap(t, c)
	wantURL := components.CeleryURL(declared.MockPassword("broker-celery-password"), 6379, 0)
	assert.Equal(t, wantURL, env["CELERY_BROKER_URL"])
	assert.Equal(t, wantURL, env["CELERY_RESULT_BACKEND"])
	assert.True(t, strings.HasPrefix(wantURL, "redis://celery:"), wantURL)
	assert.True(t, strings.HasSuffix(wantURL, "@redis:6379/0"), "alias, port and database 0")
	for k, v := range map[string]string{
		"CELERY_TASK_SERIALIZER": "json", "CELERY_RESULT_SERIALIZER": "json", "CELERY_ACCEPT_CONTENT": "json",
		"CELERY_RESULT_EXPIRES": "86400", "CELERY_TASK_TIME_LIMIT": "3600", "CELERY_TASK_SOFT_TIME_LIMIT": "3000",
		"CELERY_WORKER_CONCURRENCY": "4", "CELERY_BROKER_VISIBILITY_TIMEOUT": "7200", "CELERY_TASK_ACKS_LATE": "true",
		"CELERY_TASK_REJECT_ON_WORKER_LOST": "false", "CELERY_WORKER_PREFETCH_MULTIPLIER": "1", "CELERY_LOG_LEVEL": "debug",
		"EMAILWORKER_STALL_EXIT_SECONDS": "120",
	} {
		assert.Equal(t, v, env[k], k)
	}
	assert.Len(t, env, 15)
	var keys []string
	for _, kv := range strs(plain(t, c["envs"], true)) {
		keys = append(keys, kv)
	}
	assert.True(t, sort.StringsAreSorted(keys), "stable env order")
}

func TestEmailServiceIsWaitedOnByItsHeartbeatProbe(t *testing.T) {
	c := get(t, run(t, "dev", declared.Options{}), declared.ContainerType, "email-service-container")
	assert.Equal(t, map[string]any{
		"tests":    []any{"CMD", components.WorkerAliveCommand},
		"interval": "3.5s", "timeout": "3s", "retries": 3.0, "startPeriod": "1m0s", // as the provider reads 60s back
	}, c["healthcheck"].Mappable())
	assert.True(t, c["wait"].BoolValue(), "pulumi up waits until the worker takes tasks from Redis")
	assert.Equal(t, 180.0, c["waitTimeout"].NumberValue())

	// An image without a probe: none declared, no wait.
	c = get(t, run(t, "dev", declared.Options{Config: map[string]string{
		"emailService": `{"healthcheck": {"command": ["NONE"]}, "stallExitSeconds": 0}`}}), declared.ContainerType, "email-service-container")
	assert.Equal(t, map[string]any{"tests": []any{"NONE"}}, c["healthcheck"].Mappable())
	assert.False(t, c["wait"].BoolValue())
	assert.Equal(t, "0", envMap(t, c)["EMAILWORKER_STALL_EXIT_SECONDS"], "the watchdog is off")
}

func TestEmailServiceProdRunsTheConfiguredImage(t *testing.T) {
	r := run(t, "prod", declared.Options{})
	_, built := r.Get(declared.ImageType, "email-service-image")
	assert.False(t, built, "prod builds no reference worker")
	c := get(t, r, declared.ContainerType, "email-service-container")
	assert.Equal(t, "ghcr.io/emailclient/email-service@sha256:0000000000000000000000000000000000000000000000000000000000000000", c["image"].StringValue())
	assert.Equal(t, "info", envMap(t, c)["CELERY_LOG_LEVEL"])
	assert.Equal(t, map[string]any{"max-size": "100m", "max-file": "10"}, c["logOpts"].Mappable())
	assert.Contains(t, resOf(t, r, "email-service-container").DependsOn, "broker-redis",
		"prod: the user's image starts after Redis is healthy (wait: true), as compose's service_healthy")
}

func TestWaitForRedisOverridesTheProfile(t *testing.T) {
	prodImage := `"image": "ghcr.io/emailclient/email-service@sha256:` + strings.Repeat("0", 64) + `", `
	for profile, wait := range map[string]bool{"dev": true, "prod": false} {
		image := map[string]string{"prod": prodImage}[profile]
		r := run(t, profile, declared.Options{Config: map[string]string{"emailService": fmt.Sprintf(`{%s"waitForRedis": %t}`, image, wait)}})
		deps := resOf(t, r, "email-service-container").DependsOn
		assert.Equal(t, wait, slices.Contains(deps, "broker-redis"), "%s with waitForRedis %t: %v", profile, wait, deps)
	}
}

func TestEmailServiceCanBeTurnedOff(t *testing.T) {
	r := run(t, "dev", declared.Options{Config: map[string]string{"emailService": `{"enabled": false}`}})
	assert.Empty(t, r.ByType(components.EmailServiceType))
	_, ok := r.Get(declared.ContainerType, "email-service-container")
	assert.False(t, ok)
}

func TestConfiguredPasswordWithURLSpecialCharactersIsEncoded(t *testing.T) {
	pw := "p@ss:w/rd#?%&=+ é~[]!$'()*,;-0123456789abcdef"
	pw = strings.ReplaceAll(pw, " ", "") // validated passwords hold no spaces
	r := run(t, "dev", declared.Options{Secrets: map[string]string{"password": pw}})
	_, generated := r.Get(declared.PasswordType, "broker-celery-password")
	assert.False(t, generated, "a configured password wins")
	env := envMap(t, get(t, r, declared.ContainerType, "email-service-container"))
	for _, key := range []string{"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"} {
		u, err := url.Parse(env[key])
		require.NoError(t, err, key)
		got, ok := u.User.Password()
		require.True(t, ok)
		assert.Equal(t, pw, got, "%s decodes to the password", key)
		assert.Equal(t, "redis", u.Hostname(), "%s never falls back to localhost", key)
		assert.Equal(t, "/0", u.Path)
		assert.NotContains(t, env[key], "p@ss:w/rd#", "%s is encoded", key)
		userinfo := strings.TrimPrefix(strings.SplitN(env[key], "@redis:", 2)[0], "redis://celery:")
		assert.NotContains(t, userinfo, ";", "%s: sub-delimiters are encoded too (Python splits on them)", key)
	}
	acl := uploadsOf(t, r, "broker-redis")[redisconf.ACLFile]
	assert.Contains(t, acl, "#"+redisconf.PasswordHash(pw))
}

func TestPasswordMustBeASecret(t *testing.T) {
	_, err := declared.Run("dev", declared.Options{Config: map[string]string{"password": strings.Repeat("a", 40)}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "password: is set in plain text")
	assert.NotContains(t, err.Error(), strings.Repeat("a", 40), "the value is never echoed")
}

// TestOutputsAreSecret awaits the broker's outputs: every output that holds a password is secret.
func TestOutputsAreSecret(t *testing.T) {
	var d *stacks.Deployment
	_, err := declared.Run("dev", declared.Options{Program: func(ctx *pulumi.Context) error {
		var err error
		d, err = stacks.Deploy(ctx)
		return err
	}})
	require.NoError(t, err)
	ctx := context.Background()
	for name, out := range map[string]pulumi.Output{
		"brokerUrl": d.Broker.BrokerURL, "resultBackendUrl": d.Broker.ResultBackendURL, "opsPassword": d.Broker.OpsPassword,
	} {
		res, err := internals.UnsafeAwaitOutput(ctx, out)
		require.NoError(t, err)
		assert.True(t, res.Secret, "%s is secret", name)
	}
	for name, out := range map[string]pulumi.Output{"host": d.Broker.Host, "network": d.Broker.Network, "containerName": d.Broker.ContainerName} {
		res, err := internals.UnsafeAwaitOutput(ctx, out)
		require.NoError(t, err)
		assert.False(t, res.Secret, "%s is plain", name)
	}
	host, _ := internals.UnsafeAwaitOutput(ctx, d.Broker.Host)
	assert.Equal(t, "redis", host.Value)
	assert.Equal(t, "127.0.0.1", d.Settings.Container.HostIP, "redisHostAddress (what redis-ops --stack dev uses) is on loopback")
}
