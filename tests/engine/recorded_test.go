package engine_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secretSig marks a secret value in a deployment's JSON (the engine's encrypted-value envelope).
const secretSig = "4dabf18193072939515e22adb298388d"

// recorded is a deployment as the engine recorded it (Stack.Export), indexed for assertions: the
// inputs and outputs of every resource, by type and by name.
type recorded struct {
	resources []apitype.ResourceV3
}

func parseRecorded(t *testing.T, d apitype.UntypedDeployment) recorded {
	t.Helper()
	var dep apitype.DeploymentV3
	require.NoError(t, json.Unmarshal(d.Deployment, &dep))
	return recorded{resources: dep.Resources}
}

// byType returns the resources of a type token, by name.
func (r recorded) byType(token string) map[string]apitype.ResourceV3 {
	out := map[string]apitype.ResourceV3{}
	for _, res := range r.resources {
		if string(res.Type) == token {
			out[res.URN.Name()] = res
		}
	}
	return out
}

func isSecret(v any) bool {
	m, ok := v.(map[string]any)
	return ok && m[secretSig] != nil
}

// profileWant is what a stack's profile promises of its recorded resources: the assertions a user's CI
// makes on its own stacks (see README, "Assert your stack's resource config").
type profileWant struct {
	logSize, logFiles string
	redisMemoryMB     float64 // 0: no limit (dev)
	redisCPUs         string  // "": no limit (the provider records a decimal string)
	protectedVolumes  bool
	publishedRedis    bool // a port on 127.0.0.1 (dev)
}

var wants = map[string]profileWant{
	"dev":      {logSize: "10m", logFiles: "3", publishedRedis: true},
	"sentinel": {logSize: "10m", logFiles: "3"},
	"prod":     {logSize: "100m", logFiles: "10", redisMemoryMB: 2048, redisCPUs: "2.0", protectedVolumes: true},
}

// assertRecorded checks the deployment the engine recorded for a stack (profile: dev, sentinel, prod):
// every long-running container hardened (read-only root, all capabilities dropped, no new privileges),
// restarted unless stopped, probed by a healthcheck, stopped gracefully, with rotated logs; memory and
// CPU limits; published ports only where declared; protected volumes in prod; secrets only as secrets.
func assertRecorded(t *testing.T, profile string, r recorded) {
	t.Helper()
	want := wants[profile]
	containers := r.byType("docker:index/container:Container")
	long := 0
	for name, c := range containers {
		in := c.Inputs
		if in["restart"] == "no" {
			continue // a files carrier: created, never started
		}
		long++
		assert.Equal(t, "unless-stopped", in["restart"], "%s: restart policy", name)
		assert.Equal(t, true, in["readOnly"], "%s: read-only root", name)
		assert.Equal(t, []any{"ALL"}, fieldOf(in["capabilities"], "drops"), "%s: capabilities dropped", name)
		assert.Contains(t, in["securityOpts"], "no-new-privileges:true", "%s", name)
		assert.Equal(t, map[string]any{"max-size": want.logSize, "max-file": want.logFiles}, in["logOpts"], "%s: log rotation", name)
		if !strings.HasSuffix(name, "-backup") { // the backup scheduler's health is its backups' age (RedisBackupStale)
			assert.NotEmpty(t, fieldOf(in["healthcheck"], "tests"), "%s: healthcheck", name)
		}
		assert.Positive(t, in["stopTimeout"], "%s: a graceful stop (SIGTERM, then a grace)", name)
		assert.Equal(t, in["stopTimeout"], in["destroyGraceSeconds"], "%s: destroy waits out the same grace", name)
		if strings.HasPrefix(name, "email-service-container") {
			assert.Positive(t, in["memory"], "%s: memory limit", name)
			assert.True(t, isSecret(in["envs"]), "%s: its env (the URLs carry the password) is secret", name)
		}
		ports, _ := in["ports"].([]any)
		if name == "broker-redis" && want.publishedRedis {
			require.Len(t, ports, 1, "%s: one published port", name)
			assert.Equal(t, "127.0.0.1", fieldOf(ports[0], "ip"), "%s: published on loopback only", name)
		} else {
			assert.Empty(t, ports, "%s: publishes no port", name)
		}
	}
	assert.GreaterOrEqual(t, long, 2, "Redis and the email-service at least")
	if redis, ok := containers["broker-redis"]; ok {
		assert.Equal(t, want.redisMemoryMB, redis.Inputs["memory"], "Redis memory limit (MB)")
		if want.redisCPUs != "" {
			assert.Equal(t, want.redisCPUs, redis.Inputs["cpus"], "Redis CPU limit")
		}
	}

	protected := 0
	for name, v := range r.byType("docker:index/volume:Volume") {
		holdsData := strings.HasPrefix(name, "broker-data") || strings.Contains(name, "backups")
		if v.Protect {
			protected++
		}
		if holdsData {
			assert.Equal(t, want.protectedVolumes, v.Protect, "volume %s: protected in prod only", name)
		}
	}
	if want.protectedVolumes {
		assert.Positive(t, protected, "prod protects its data or backup volumes")
	}

	for name, pw := range r.byType("random:index/randomPassword:RandomPassword") {
		assert.True(t, isSecret(pw.Outputs["result"]), "%s: the generated password is recorded as a secret", name)
	}
	for _, res := range r.resources {
		if res.Type == "pulumi:pulumi:Stack" {
			for _, out := range []string{"celeryBrokerUrl", "celeryResultBackend", "opsPassword"} {
				assert.True(t, isSecret(res.Outputs[out]), "stack output %s is secret", out)
			}
			assert.False(t, isSecret(res.Outputs["celeryEnv"]), "celeryEnv is plain")
		}
	}
}

// fieldOf is a field of a recorded object (nil when v is not an object).
func fieldOf(v any, key string) any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	return m[key]
}

// String names a recorded deployment's resources, for failure messages.
func (r recorded) String() string {
	var names []string
	for _, res := range r.resources {
		names = append(names, fmt.Sprintf("%s %s", res.Type, res.URN.Name()))
	}
	return strings.Join(names, "\n")
}
