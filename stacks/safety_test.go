package stacks_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/declared"
)

// names are the Docker and host names a stack's settings give its objects.
func names(s stacks.Settings) map[string]string {
	out := map[string]string{}
	objects := append(components.BrokerObjects(s.Container, s.Topology, &s.Operations), s.EmailService.Objects()...)
	for _, o := range objects {
		out[o.Kind+" "+o.Name] = o.Key
	}
	return out
}

func loadStack(t *testing.T, stack string, values map[string]string) stacks.Settings {
	t.Helper()
	cfg := map[string]string{stacks.KeyDockerHost: "unix:///var/run/docker.sock"}
	for k, v := range values {
		cfg[k] = v
	}
	s, err := stacks.Load(stack, stacks.MapSource{Values: cfg})
	require.NoError(t, err)
	return s
}

// TestStacksShareNoDockerObject: dev, prod and a second prod-profile stack on one engine share no
// container, volume, network, image or host port (names are scoped by stack by default).
func TestStacksShareNoDockerObject(t *testing.T) {
	prodImage := map[string]string{"emailService": `{"image":"ghcr.io/acme/email@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`}
	all := map[string]map[string]string{
		"dev":     names(loadStack(t, "dev", nil)),
		"prod":    names(loadStack(t, "prod", prodImage)),
		"staging": names(loadStack(t, "staging", map[string]string{"profile": "prod", "emailService": `{"image":"ghcr.io/acme/email@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`, "container": `{"dataHostPath":"/srv/staging/redis"}`})),
		"sentinel": names(loadStack(t, "sentinel", map[string]string{"profile": "dev", "topology": `{"mode":"sentinel"}`,
			"container": `{"hostPort":0}`})),
	}
	owner := map[string]string{}
	for stack, objects := range all {
		require.NotEmpty(t, objects)
		for name := range objects {
			if other, ok := owner[name]; ok && !strings.HasPrefix(name, components.KindHostPath) {
				t.Errorf("%s is used by stacks %s and %s", name, other, stack)
			}
			owner[name] = stack
		}
	}
	assert.Contains(t, all["dev"], "container emailclient-dev-redis")
	assert.Contains(t, all["prod"], "volume emailclient-prod-redis-backups")
	assert.Contains(t, all["staging"], "image emailclient-redis:staging")
	// Explicit names still win.
	s := loadStack(t, "dev", map[string]string{"container": `{"name":"mine","volume":"my-data","network":"my-net"}`})
	assert.Equal(t, []string{"mine", "my-data", "my-net"}, []string{s.Container.Name, s.Container.Volume, s.Container.Network})
}

// legacyObjects are the Docker objects stacks deployed before names were scoped by stack had (dev
// and prod profiles, from the program of 2026-12-01), written out here once so that the pin step is
// checked against the past, not against itself.
var legacyObjects = map[string][]string{
	"dev": {"network emailclient-net", "image emailclient-redis:dev", "container emailclient-redis", "container emailclient-redis-files",
		"volume emailclient-redis-run", "volume redis-data", "host port 127.0.0.1:6379", "container emailclient-email-service"},
	"prod": {"network emailclient-net", "image emailclient-redis:prod", "container emailclient-redis", "container emailclient-redis-files",
		"volume emailclient-redis-run", "host path /srv/emailclient/redis", "image emailclient-redis-ops:emailclient-redis",
		"container emailclient-redis-backup", "volume redis-backups", "container emailclient-redis-metrics", "container emailclient-email-service"},
}

// TestPinnedLegacyNamesKeepAnOldStacksObjects: the settings `make pin-names` writes (LegacyNames) give
// an existing stack exactly the Docker objects it had, so its next up replaces nothing by name.
func TestPinnedLegacyNamesKeepAnOldStacksObjects(t *testing.T) {
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	project := loadProject(t)
	for _, stack := range []string{"dev", "prod"} {
		ps, err := workspace.LoadProjectStack(nil, project, filepath.Join(root, "Pulumi."+stack+".yaml"))
		require.NoError(t, err)
		// As `make pin-names` does: `pulumi config set --path KEY VALUE`, with the CLI's own code.
		for key, value := range stacks.LegacyNames(stack) {
			require.NoError(t, ps.Config.Set(config.MustMakeKey(stacks.Project, key), config.NewValue(value), true), key)
		}
		cfg, err := stacks.ProjectConfig(project, stack, ps.Config)
		require.NoError(t, err)
		s, err := stacks.Load(stack, stacks.MapSource{Values: cfg})
		require.NoError(t, err, stack)
		got := names(s)
		for _, o := range legacyObjects[stack] {
			assert.Contains(t, got, o, "%s: pinned names keep %s", stack, o)
		}
		assert.NotContains(t, got, "container emailclient-"+stack+"-redis", "%s: nothing scoped remains", stack)
	}
}

// TestEveryRunningContainerStopsGracefully: every container that runs gets a stop timeout and the
// same destroy grace (the provider otherwise kills at once on replace and destroy); Redis's is sized
// to maxmemory, the email-service's to a running task.
func TestEveryRunningContainerStopsGracefully(t *testing.T) {
	for _, tc := range []struct {
		stack string
		opts  declared.Options
		redis float64
	}{
		{"dev", declared.Options{}, 36},
		{"prod", declared.Options{}, 52},
		{"prod", declared.Options{Config: map[string]string{"topology": `{"mode":"sentinel"}`}}, 52},
		{"dev", declared.Options{Config: map[string]string{"container": `{"stopGraceSeconds":300}`}}, 300},
	} {
		r := run(t, tc.stack, tc.opts)
		for _, c := range r.ByType(declared.ContainerType) {
			if strings.HasSuffix(c.Name, "-files") {
				continue // never started
			}
			stop, grace := c.Inputs["stopTimeout"], c.Inputs["destroyGraceSeconds"]
			require.True(t, stop.HasValue() && grace.HasValue(), "%s: stopTimeout and destroyGraceSeconds declared", c.Name)
			assert.Equal(t, stop.NumberValue(), grace.NumberValue(), c.Name)
			switch {
			case strings.HasPrefix(c.Name, "broker-redis"):
				assert.Equal(t, tc.redis, stop.NumberValue(), "%s %s", tc.stack, c.Name)
			case strings.HasPrefix(c.Name, "email-service"):
				assert.Equal(t, float64(60), stop.NumberValue(), c.Name)
			default:
				assert.GreaterOrEqual(t, stop.NumberValue(), float64(10), c.Name)
			}
		}
	}
	assert.Equal(t, 36, components.RedisContainer{}.StopGrace(redisconf.Config{MaxMemory: "512mb"}))
	assert.Equal(t, 148, components.RedisContainer{}.StopGrace(redisconf.Config{MaxMemory: "4gb"}))
}

// TestProdProtectsItsData: prod's data and backups volumes are protected (destroy and a replace stop
// before deleting); dev's are not, and prod can switch it off to tear down on purpose.
func TestProdProtectsItsData(t *testing.T) {
	volumesProtected := func(r *declared.Result) map[string]bool {
		out := map[string]bool{}
		for _, v := range r.ByType(declared.VolumeType) {
			out[v.Name] = v.Protect
		}
		return out
	}
	prod := volumesProtected(run(t, "prod", declared.Options{Config: map[string]string{"container": `{"dataHostPath":""}`}}))
	assert.Equal(t, map[string]bool{"broker-data": true, "broker-run": false, "ops-backups": true}, prod)
	assert.Equal(t, map[string]bool{"broker-data": false, "broker-run": false}, volumesProtected(run(t, "dev", declared.Options{})))
	off := volumesProtected(run(t, "prod", declared.Options{Config: map[string]string{"protect": "false"}}))
	assert.False(t, off["ops-backups"], "protect: false lifts it")
	for _, c := range run(t, "prod", declared.Options{}).ByType(declared.ContainerType) {
		assert.False(t, c.Protect, "%s: containers are replaced by ordinary changes (rotation, config), never protected", c.Name)
	}
}

// TestEmailServiceIsHardened: the email-service runs with what the broker's containers have, as far
// as a Celery worker allows.
func TestEmailServiceIsHardened(t *testing.T) {
	c := get(t, run(t, "dev", declared.Options{}), declared.ContainerType, "email-service-container")
	assert.Equal(t, []string{"ALL"}, strs(c["capabilities"].ObjectValue()["drops"]))
	assert.Equal(t, []string{"no-new-privileges:true"}, strs(c["securityOpts"]))
	assert.True(t, c["readOnly"].BoolValue())
	assert.Equal(t, "rw,noexec,nosuid,size=64m", c["tmpfs"].ObjectValue()["/tmp"].StringValue())
	assert.Equal(t, float64(1024), c["memory"].NumberValue())
	assert.Equal(t, float64(1024), c["memorySwap"].NumberValue(), "no swap")
	ulimit := c["ulimits"].ArrayValue()[0].ObjectValue()
	assert.Equal(t, "nproc", ulimit["name"].StringValue())
	assert.Equal(t, float64(256), ulimit["hard"].NumberValue())
	assert.Equal(t, "emailclient-email-worker:emailclient-dev-email-service", get(t, run(t, "dev", declared.Options{}), declared.ImageType, "email-service-image")["imageName"].StringValue())

	c = get(t, run(t, "dev", declared.Options{Config: map[string]string{"emailService": `{"readOnlyRoot":false,"memory":"","maxProcesses":0}`}}), declared.ContainerType, "email-service-container")
	assert.False(t, c["readOnly"].BoolValue())
	assert.False(t, c["tmpfs"].HasValue() && len(c["tmpfs"].ObjectValue()) > 0)
	assert.False(t, c["ulimits"].HasValue() && len(c["ulimits"].ArrayValue()) > 0)
}

// TestRejectOnWorkerLostIsItsOwnSetting: off by default although acksLate is on (a task that kills its
// worker is not requeued forever), on when asked, refused without acksLate.
func TestRejectOnWorkerLostIsItsOwnSetting(t *testing.T) {
	env := envMap(t, get(t, run(t, "dev", declared.Options{}), declared.ContainerType, "email-service-container"))
	assert.Equal(t, "true", env["CELERY_TASK_ACKS_LATE"])
	assert.Equal(t, "false", env["CELERY_TASK_REJECT_ON_WORKER_LOST"])
	env = envMap(t, get(t, run(t, "dev", declared.Options{Config: map[string]string{"celery": `{"rejectOnWorkerLost":true}`}}), declared.ContainerType, "email-service-container"))
	assert.Equal(t, "true", env["CELERY_TASK_REJECT_ON_WORKER_LOST"])
	_, err := declared.Run("dev", declared.Options{Config: map[string]string{"celery": `{"rejectOnWorkerLost":true,"acksLate":false}`}})
	require.ErrorContains(t, err, "celery.rejectOnWorkerLost: true is not accepted; accepted: false, or true together with celery.acksLate: true")
}

// TestStackFileReaderSkipsEncryptedPasswords: `make config` works on a stack whose passwords are set
// the documented way (encrypted), and still refuses other encrypted values.
func TestStackFileReaderSkipsEncryptedPasswords(t *testing.T) {
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(root, "Pulumi.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), data, 0o644))
	write := func(extra string) {
		stackFile := "encryptionsalt: v1:c2FsdA==:v1:aXY=:Y2lwaGVy\nconfig:\n  docker:host: unix:///var/run/docker.sock\n" + extra
		require.NoError(t, os.WriteFile(filepath.Join(dir, "Pulumi.prod.yaml"), []byte(stackFile), 0o644))
	}
	write("  emailclient-infra:emailService:\n    image: ghcr.io/acme/email@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" +
		"  emailclient-infra:password:\n    secure: v1:AAAA:BBBB\n  emailclient-infra:opsPassword:\n    secure: v1:CCCC:DDDD\n")
	s, err := stacks.LoadStackFile(dir, "prod")
	require.NoError(t, err)
	assert.Contains(t, s.Redis.Render(), "maxmemory 1gb")
	write("  emailclient-infra:emailService:\n    secure: v1:AAAA:BBBB\n")
	_, err = stacks.LoadStackFile(dir, "prod")
	require.ErrorContains(t, err, "emailclient-infra:emailService is encrypted")
}

// TestStandaloneAndSentinelShareThePrimarysData: the sentinel topology's initial primary is the
// standalone broker's successor (aliases of its container, carrier and volumes) on the same data
// volume, so switching the mode keeps the queued tasks, both ways.
func TestStandaloneAndSentinelShareThePrimarysData(t *testing.T) {
	standalone := run(t, "dev", declared.Options{})
	sentinel := run(t, "dev", declared.Options{Config: map[string]string{"topology": `{"mode":"sentinel"}`, "container": `{"hostPort":0}`}})
	assert.Equal(t, get(t, standalone, declared.VolumeType, "broker-data")["name"], get(t, sentinel, declared.VolumeType, "broker-data-0")["name"],
		"the initial primary mounts the standalone broker's data volume")
	assert.Equal(t, "emailclient-dev-redis-data-1", get(t, sentinel, declared.VolumeType, "broker-data-1")["name"].StringValue())
	for now, former := range map[string]string{"broker-redis-0": "broker-redis", "broker-redis-0-files": "broker-redis-files", "broker-data-0": "broker-data", "broker-run-0": "broker-run"} {
		assert.Equal(t, []string{former}, resOf(t, sentinel, now).Aliases, "%s was %s", now, former)
		assert.Equal(t, []string{now}, resOf(t, standalone, former).Aliases, "%s was %s", former, now)
	}
	assert.Empty(t, resOf(t, sentinel, "broker-redis-1").Aliases, "replicas start fresh and sync from the primary")
}
