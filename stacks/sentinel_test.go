package stacks_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/declared"
)

var sentinelProd = declared.Options{Config: map[string]string{"topology": `{"mode":"sentinel"}`}}

func TestSentinelTopologyDeclaresNodesAndSentinels(t *testing.T) {
	r := run(t, "prod", sentinelProd)
	var brokerContainers int
	for _, c := range r.ByType(declared.ContainerType) {
		if _, isNode := r.RunFiles(c.Name); isNode {
			brokerContainers++
		}
	}
	require.Equal(t, 3+3, brokerContainers, "a primary, 2 replicas and 3 Sentinels")
	opsPw := declared.MockPassword("broker-ops-password")
	sentinelPw := declared.MockPassword("broker-sentinel-password")
	replicaPw := declared.MockPassword("broker-replica-password")
	sentinelUserPw := declared.MockPassword("broker-sentinel-user-password")
	for i := 0; i <= 2; i++ {
		c := get(t, r, declared.ContainerType, fmt.Sprintf("broker-redis-%d", i))
		assert.Equal(t, fmt.Sprintf("emailclient-prod-redis-%d", i), c["name"].StringValue())
		assert.Equal(t, []string{components.NodeAlias(i)}, strs(c["networksAdvanced"].ArrayValue()[0].ObjectValue()["aliases"]))
		assert.Equal(t, []string{"node", redisconf.ConfigFile}, strs(c["command"]), "run from a copy that keeps the learned role")
		assert.Equal(t, fmt.Sprintf("/srv/emailclient/redis/%d", i), c["volumes"].ArrayValue()[0].ObjectValue()["hostPath"].StringValue(), "each node its own data")
		assert.True(t, c["readOnly"].BoolValue())
		assert.Equal(t, float64(2048), c["memory"].NumberValue())
		up := uploadsOf(t, r, fmt.Sprintf("broker-redis-%d", i))
		conf := up[redisconf.ConfigFile]
		assert.Contains(t, conf, "\nreplica-announce-ip "+components.NodeAlias(i)+"\n")
		assert.Contains(t, conf, "\nmasteruser replica\n", "replicas authenticate as the replica user, not the admin")
		assert.Contains(t, conf, "\ninclude "+redisconf.SecretsFile+"\n")
		assert.Contains(t, conf, "\nmin-replicas-to-write 1\n")
		assert.NotContains(t, conf, replicaPw, "the password is only in secrets.conf")
		assert.Equal(t, "masterauth \""+replicaPw+"\"\n", up[redisconf.SecretsFile])
		acl := up[redisconf.ACLFile]
		assert.Contains(t, acl, "\nuser replica on resetkeys resetchannels -@all +auth +psync +replconf +ping #"+redisconf.PasswordHash(replicaPw)+"\n")
		assert.Contains(t, acl, "\nuser sentinel on resetkeys resetchannels &__sentinel__:* -@all ")
		assert.Contains(t, acl, "#"+redisconf.PasswordHash(sentinelUserPw)+"\n")
		if i == 0 {
			assert.NotContains(t, conf, "replicaof")
		} else {
			assert.Contains(t, conf, "\nreplicaof redis-0 6379\n")
		}
	}
	// Not deployed yet: the data nodes are created together.
	for i := 0; i <= 2; i++ {
		for k := 0; k <= 2; k++ {
			assert.NotContains(t, resOf(t, r, fmt.Sprintf("broker-redis-%d", i)).DependsOn, fmt.Sprintf("broker-redis-%d", k))
		}
	}
	// Not deployed yet: the Sentinels are created alongside the data nodes (their carriers too).
	for j := 1; j <= 3; j++ {
		for _, res := range []string{fmt.Sprintf("broker-sentinel-%d", j), components.FilesCarrier(fmt.Sprintf("broker-sentinel-%d", j))} {
			for i := 0; i <= 2; i++ {
				assert.NotContains(t, resOf(t, r, res).DependsOn, fmt.Sprintf("broker-redis-%d", i), "%s waits for nothing on the first deploy", res)
			}
		}
	}
	// Deployed (the Sentinels name redis-0): one data node at a time, the replicas first, the primary last.
	r = run(t, "prod", declared.Options{Config: sentinelProd.Config, LivePrimary: "redis-0"})
	assert.NotContains(t, resOf(t, r, "broker-redis-1").DependsOn, "broker-redis-0")
	assert.NotContains(t, resOf(t, r, "broker-redis-1").DependsOn, "broker-redis-2")
	assert.Contains(t, resOf(t, r, "broker-redis-2").DependsOn, "broker-redis-1")
	assert.Contains(t, resOf(t, r, "broker-redis-0").DependsOn, "broker-redis-2")
	assert.Contains(t, resOf(t, r, components.FilesCarrier("broker-redis-0")).DependsOn, "broker-redis-2", "its files change when the node is next")
	assert.Contains(t, resOf(t, r, components.FilesCarrier("broker-redis-2")).DependsOn, "broker-redis-1")
	// After a failover to redis-1: redis-0, redis-2, then redis-1.
	r = run(t, "prod", declared.Options{Config: sentinelProd.Config, LivePrimary: "redis-1"})
	assert.Contains(t, resOf(t, r, "broker-redis-2").DependsOn, "broker-redis-0")
	assert.Contains(t, resOf(t, r, "broker-redis-1").DependsOn, "broker-redis-2")
	assert.NotContains(t, resOf(t, r, "broker-redis-0").DependsOn, "broker-redis-1")
	for j := 1; j <= 3; j++ {
		c := get(t, r, declared.ContainerType, fmt.Sprintf("broker-sentinel-%d", j))
		assert.Equal(t, []string{"sentinel"}, strs(c["command"]))
		assert.Equal(t, []string{components.SentinelAlias(j)}, strs(c["networksAdvanced"].ArrayValue()[0].ObjectValue()["aliases"]))
		up := uploadsOf(t, r, fmt.Sprintf("broker-sentinel-%d", j))
		conf := up[redisconf.SentinelConfigFile]
		assert.Contains(t, conf, "\nsentinel monitor emailclient redis-0 6379 2\n")
		assert.Contains(t, conf, "\nsentinel announce-ip "+components.SentinelAlias(j)+"\n")
		assert.Contains(t, conf, "\nsentinel resolve-hostnames yes\n")
		assert.Contains(t, conf, "\nsentinel auth-user emailclient sentinel\n", "the Sentinels reach the data nodes as the sentinel user")
		assert.Contains(t, conf, "\nsentinel auth-pass emailclient \""+sentinelUserPw+"\"\n")
		for _, f := range up {
			assert.NotContains(t, f, opsPw, "no admin password in a Sentinel's files")
		}
		assert.Contains(t, conf, "\nrequirepass \""+sentinelPw+"\"\n", "Sentinels are authenticated")
		assert.Equal(t, sentinelPw, up[redisconf.SentinelPasswordFile])
		deps := resOf(t, r, fmt.Sprintf("broker-sentinel-%d", j)).DependsOn
		assert.Contains(t, deps, "broker-redis-0", "deployed, Sentinels are replaced after the data nodes")
		assert.Contains(t, resOf(t, r, components.FilesCarrier(fmt.Sprintf("broker-sentinel-%d", j))).DependsOn, "broker-redis-0", "and their new files land then")
		for k := 1; k <= 3; k++ {
			assert.NotContains(t, deps, fmt.Sprintf("broker-sentinel-%d", k), "Sentinels are created in parallel: alone, one never has a quorum")
		}
	}
	env := envMap(t, get(t, r, declared.ContainerType, "email-service-container"))
	celeryPw := declared.MockPassword("broker-celery-password")
	urls := strings.Split(env["CELERY_BROKER_URL"], ";")
	require.Len(t, urls, 3)
	for j, u := range urls {
		assert.Equal(t, fmt.Sprintf("sentinel://celery:%s@sentinel-%d:26379/0", celeryPw, j+1), u)
	}
	assert.Equal(t, env["CELERY_BROKER_URL"], env["CELERY_RESULT_BACKEND"])
	assert.Equal(t, "emailclient", env["CELERY_SENTINEL_MASTER_NAME"])
	assert.Equal(t, sentinelPw, env["CELERY_SENTINEL_PASSWORD"])
	deps := resOf(t, r, "email-service-container").DependsOn
	for _, want := range []string{"broker-redis-0", "broker-redis-1", "broker-redis-2"} {
		assert.Contains(t, deps, want, "the worker starts after the data nodes are healthy")
	}
	assert.NotContains(t, deps, "broker-sentinel-1", "and beside the Sentinels, not after them")
}

func TestStandaloneHasNoSentinelSettings(t *testing.T) {
	env := envMap(t, get(t, run(t, "dev", declared.Options{}), declared.ContainerType, "email-service-container"))
	_, ok := env["CELERY_SENTINEL_MASTER_NAME"]
	assert.False(t, ok)
}

// TestSentinelRotationKeepsThePreviousInternalPasswords: after a rotation the data nodes accept the
// replica and sentinel users' passwords of this rotation and the one before, and replicas authenticate
// with the one before, which nodes not yet replaced also accept; the client-facing passwords do not.
func TestSentinelRotationKeepsThePreviousInternalPasswords(t *testing.T) {
	for _, rotation := range []string{"1", "2"} {
		r := run(t, "prod", declared.Options{Config: map[string]string{"topology": `{"mode":"sentinel"}`, "passwordRotation": rotation}})
		slot0, slot1 := declared.MockPassword("broker-replica-password"), declared.MockPassword("broker-replica-password-1")
		user0, user1 := declared.MockPassword("broker-sentinel-user-password"), declared.MockPassword("broker-sentinel-user-password-1")
		current, previous, sentinelCurrent := slot1, slot0, user1
		if rotation == "2" {
			current, previous, sentinelCurrent = slot0, slot1, user0
		}
		up := uploadsOf(t, r, "broker-redis-1")
		acl := up[redisconf.ACLFile]
		assert.Contains(t, acl, " #"+redisconf.PasswordHash(current)+" #"+redisconf.PasswordHash(previous)+"\n", "rotation %s: replica user accepts both", rotation)
		assert.Contains(t, acl, " #"+redisconf.PasswordHash(user0), "rotation %s", rotation)
		assert.Contains(t, acl, " #"+redisconf.PasswordHash(user1), "rotation %s", rotation)
		assert.Equal(t, "masterauth \""+previous+"\"\n", up[redisconf.SecretsFile], "rotation %s: replicas use the previous password", rotation)
		assert.Equal(t, 1, strings.Count(acl, "user celery "), "one celery line")
		assert.Equal(t, 1, strings.Count(strings.SplitN(acl[strings.Index(acl, "user celery "):], "\n", 2)[0], "#"), "rotation %s: the celery user has one password", rotation)
		conf := uploadsOf(t, r, "broker-sentinel-1")[redisconf.SentinelConfigFile]
		assert.Contains(t, conf, "\nsentinel auth-pass emailclient \""+sentinelCurrent+"\"\n", "rotation %s: Sentinels (replaced after every data node) use the current one", rotation)
	}
	// Before the first rotation there is one of each, as before rotations had slots.
	r := run(t, "prod", sentinelProd)
	_, second := r.Get(declared.PasswordType, "broker-replica-password-1")
	assert.False(t, second)
	acl := uploadsOf(t, r, "broker-redis-1")[redisconf.ACLFile]
	assert.Contains(t, acl, " #"+redisconf.PasswordHash(declared.MockPassword("broker-replica-password"))+"\n")
}
