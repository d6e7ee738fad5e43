package stacks_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/tests/declared"
)

// badSettings are settings that must fail before any resource is registered, each with the key its
// error must name and a word of what is accepted.
var badSettings = []struct {
	name, stack  string
	config       map[string]string
	secrets      map[string]string
	key, accepts string
}{
	{"maxmemory unit", "dev", map[string]string{"redis": `{"maxmemory":"512xb"}`}, nil, "redis.maxmemory", "unit"},
	{"maxmemory zero", "dev", map[string]string{"redis": `{"maxmemory":"0"}`}, nil, "redis.maxmemory", "memory limit"},
	{"maxmemory negative", "dev", map[string]string{"redis": `{"maxmemory":"-1gb"}`}, nil, "redis.maxmemory", "unit"},
	{"maxmemory huge", "dev", map[string]string{"redis": `{"maxmemory":"99999999gb"}`}, nil, "redis.maxmemory", "unit"},
	{"maxmemory injection", "dev", map[string]string{"redis": `{"maxmemory":"1gb\nrequirepass x"}`}, nil, "redis.maxmemory", "unit"},
	{"allkeys-lru unacknowledged", "dev", map[string]string{"redis": `{"maxmemoryPolicy":"allkeys-lru"}`}, nil, "redis.maxmemoryPolicy", "acknowledgeUnsafeEviction"},
	{"volatile-random unacknowledged", "prod", map[string]string{"redis": `{"maxmemoryPolicy":"volatile-random"}`}, nil, "redis.maxmemoryPolicy", "kombu#1063"},
	{"unknown policy", "dev", map[string]string{"redis": `{"maxmemoryPolicy":"lru"}`}, nil, "redis.maxmemoryPolicy", "noeviction"},
	{"samples", "dev", map[string]string{"redis": `{"maxmemorySamples":0}`}, nil, "redis.maxmemorySamples", "1 to 64"},
	{"appendfsync", "dev", map[string]string{"redis": `{"appendfsync":"sometimes"}`}, nil, "redis.appendfsync", "everysec"},
	{"save point", "dev", map[string]string{"redis": `{"save":[{"seconds":0,"changes":1}]}`}, nil, "redis.save[0]", "from 1 to 2147483647"},
	{"port out of range", "dev", map[string]string{"redis": `{"port":70000}`}, nil, "redis.port", "1 to 65535"},
	{"port wrong type", "dev", map[string]string{"redis": `{"port":"6379"}`}, nil, "redis.port", "whole number"},
	{"typo in a key", "dev", map[string]string{"redis": `{"maxmemroy":"1gb"}`}, nil, "redis.maxmemroy", "unknown setting"},
	{"rewrite min size", "dev", map[string]string{"redis": `{"autoAofRewriteMinSize":"64 mb"}`}, nil, "redis.autoAofRewriteMinSize", "unit"},
	{"loglevel", "dev", map[string]string{"redis": `{"loglevel":"loud"}`}, nil, "redis.loglevel", "notice"},
	{"memory below headroom", "prod", map[string]string{"container": `{"memory":"1100mb"}`}, nil, "container.memory", "headroom"},
	{"reservation above limit", "prod", map[string]string{"container": `{"memoryReservation":"3gb"}`}, nil, "container.memoryReservation", "at most"},
	{"unknown log size", "dev", map[string]string{"container": `{"log":{"maxSize":"10 megs","maxFile":3}}`}, nil, "container.log.maxSize", "10m"},
	{"log files", "prod", map[string]string{"container": `{"log":{"maxSize":"10m","maxFile":0}}`}, nil, "container.log.maxFile", "1 to 100"},
	{"host port range", "dev", map[string]string{"container": `{"hostPort":-1}`}, nil, "container.hostPort", "0 to 65535"},
	{"host ip public", "dev", map[string]string{"container": `{"hostIp":"0.0.0.0"}`}, nil, "container.hostIp", "loopback"},
	{"restart", "dev", map[string]string{"container": `{"restart":"sometimes"}`}, nil, "container.restart", "unless-stopped"},
	{"healthcheck interval", "dev", map[string]string{"container": `{"healthcheck":{"interval":"30","timeout":"10s","retries":3,"startPeriod":"5s"}}`}, nil, "container.healthcheck.interval", "duration"},
	{"healthcheck timeout", "dev", map[string]string{"container": `{"healthcheck":{"interval":"10s","timeout":"20s","retries":3,"startPeriod":"5s"}}`}, nil, "container.healthcheck.timeout", "shorter"},
	{"container name with space", "dev", map[string]string{"container": `{"name":"redis; rm -rf /"}`}, nil, "container.name", "letters"},
	{"host path relative", "prod", map[string]string{"container": `{"dataHostPath":"data/redis"}`}, nil, "container.dataHostPath", "absolute"},
	{"host path with colon", "prod", map[string]string{"container": `{"dataHostPath":"/srv/a:/etc"}`}, nil, "container.dataHostPath", "absolute"},
	{"cpus", "prod", map[string]string{"container": `{"cpus":"lots"}`}, nil, "container.cpus", "number of CPUs"},
	{"base image", "dev", map[string]string{"container": `{"baseImage":"Redis 7"}`}, nil, "container.baseImage", "image reference"},
	{"platform", "dev", map[string]string{"container": `{"platform":"windows/amd64"}`}, nil, "container.platform", "linux/amd64"},
	{"visibility below time limit", "dev", map[string]string{"celery": `{"visibilityTimeout":600}`}, nil, "celery.visibilityTimeout", "run twice"},
	{"soft limit above hard", "dev", map[string]string{"celery": `{"taskSoftTimeLimit":4000}`}, nil, "celery.taskSoftTimeLimit", "below"},
	{"pickle", "dev", map[string]string{"celery": `{"taskSerializer":"pickle"}`}, nil, "celery.taskSerializer", "json"},
	{"results never expire with volatile", "dev", map[string]string{"celery": `{"resultExpires":0}`}, nil, "celery.resultExpires", "must expire"},
	{"database", "dev", map[string]string{"celery": `{"database":16}`}, nil, "celery.database", "0 to 15"},
	{"concurrency", "dev", map[string]string{"celery": `{"workerConcurrency":0}`}, nil, "celery.workerConcurrency", "1 to 256"},
	{"sync enqueue on standalone", "dev", map[string]string{"celery": `{"syncEnqueue":{"enabled":true}}`}, nil, "celery.syncEnqueue.enabled", "topology.mode sentinel"},
	{"sync enqueue more replicas than there are", "dev", map[string]string{"celery": `{"syncEnqueue":{"enabled":true,"replicas":3}}`,
		"topology": `{"mode":"sentinel"}`, "container": `{"hostPort":0}`}, nil, "celery.syncEnqueue.replicas", "1 to topology.replicas (2)"},
	{"sync enqueue waits forever", "dev", map[string]string{"celery": `{"syncEnqueue":{"enabled":true,"timeoutMilliseconds":0}}`,
		"topology": `{"mode":"sentinel"}`, "container": `{"hostPort":0}`}, nil, "celery.syncEnqueue.timeoutMilliseconds", "1 to 60000"},
	{"sync enqueue timeout wrong type", "dev", map[string]string{"celery": `{"syncEnqueue":{"timeoutMilliseconds":"1s"}}`}, nil, "celery.syncEnqueue.timeoutMilliseconds", "whole number"},
	{"prod image missing", "prod", map[string]string{"emailService": `{"image":""}`}, nil, "emailService.image", "required in prod"},
	{"image reference", "dev", map[string]string{"emailService": `{"image":"my image"}`}, nil, "emailService.image", "image reference"},
	{"short prod password", "prod", nil, map[string]string{"password": "short-but-secret-123"}, "password", "at least 32"},
	{"password with newline", "dev", nil, map[string]string{"opsPassword": "0123456789abcdef\nrequirepass x"}, "opsPassword", "no spaces, newlines"},
	{"profile unknown", "staging", nil, nil, "profile", "dev, prod"},
	{"topology mode", "dev", map[string]string{"topology": `{"mode":"cluster"}`}, nil, "topology.mode", "standalone, sentinel"},
	{"quorum above sentinels", "prod", map[string]string{"topology": `{"mode":"sentinel","quorum":4}`}, nil, "topology.quorum", "1 to topology.sentinels"},
	{"too few sentinels", "prod", map[string]string{"topology": `{"mode":"sentinel","sentinels":2,"quorum":1}`}, nil, "topology.sentinels", "3 to 7"},
	{"no replica", "prod", map[string]string{"topology": `{"mode":"sentinel","replicas":0,"minReplicasToWrite":0}`}, nil, "topology.replicas", "1 to 5"},
	{"min replicas above replicas", "prod", map[string]string{"topology": `{"mode":"sentinel","minReplicasToWrite":3}`}, nil, "topology.minReplicasToWrite", "0 to topology.replicas"},
	{"sentinel with host port", "dev", map[string]string{"topology": `{"mode":"sentinel"}`}, nil, "container.hostPort", "through the Sentinels"},
	{"backup cron", "prod", map[string]string{"operations": `{"backup":{"enabled":true,"schedule":"every day","retention":"720h","volume":"b"}}`}, nil, "operations.backup.schedule", "cron"},
	{"backup retention", "prod", map[string]string{"operations": `{"backup":{"enabled":true,"schedule":"0 2 * * *","retention":"30d","volume":"b"}}`}, nil, "operations.backup.retention", "720h"},
	{"ops build", "dev", map[string]string{"operations": `{"build":"magic"}`}, nil, "operations.build", "source, prebuilt"},
	{"metrics public", "prod", map[string]string{"operations": `{"metrics":{"enabled":true,"hostPort":9121,"hostIp":"0.0.0.0"}}`}, nil, "operations.metrics.hostIp", "loopback"},
	{"remote endpoint without scheme", "prod", remoteOps(`"endpoint":"s3.example.com","bucket":"backups"`), remoteKeys, "operations.backup.remote.endpoint", "http:// or https://"},
	{"remote endpoint with a path", "prod", remoteOps(`"endpoint":"https://s3.example.com/backups","bucket":"backups"`), remoteKeys, "operations.backup.remote.endpoint", "host[:port]"},
	{"remote bucket uppercase", "prod", remoteOps(`"endpoint":"https://s3.example.com","bucket":"Backups"`), remoteKeys, "operations.backup.remote.bucket", "lowercase"},
	{"remote bucket missing", "prod", remoteOps(`"endpoint":"https://s3.example.com"`), remoteKeys, "operations.backup.remote.bucket", "3-63"},
	{"remote prefix climbing", "prod", remoteOps(`"endpoint":"https://s3.example.com","bucket":"backups","prefix":"a/../b"`), remoteKeys, "operations.backup.remote.prefix", "no .."},
	{"remote prefix leading slash", "prod", remoteOps(`"endpoint":"https://s3.example.com","bucket":"backups","prefix":"/prod"`), remoteKeys, "operations.backup.remote.prefix", "single /"},
	{"remote without backups", "dev", map[string]string{"operations": `{"backup":{"remote":{"enabled":true,"endpoint":"https://s3.example.com","bucket":"backups"}}}`}, remoteKeys, "operations.backup.remote.enabled", "operations.backup.enabled true"},
	{"remote without credentials", "prod", remoteOps(`"endpoint":"https://s3.example.com","bucket":"backups"`), nil, "backupRemoteSecretKey", "--secret"},
	{"remote secret key in plain text", "prod", mergeMaps(remoteOps(`"endpoint":"https://s3.example.com","bucket":"backups"`), map[string]string{"backupRemoteSecretKey": "plain-secret-value"}), map[string]string{"backupRemoteAccessKey": "access-key-value"}, "backupRemoteSecretKey", "plain text"},
	{"rotation negative", "dev", map[string]string{"passwordRotation": "-1"}, nil, "passwordRotation", "0 to 1000000"},
	{"uid root", "dev", map[string]string{"container": `{"uid":0}`}, nil, "container.uid", "1 to 2147483647"},
	{"object not an object", "dev", map[string]string{"celery": `[1,2]`}, nil, "celery", "object"},
}

func TestBadSettingsFailNamingTheKey(t *testing.T) {
	require.GreaterOrEqual(t, len(badSettings), 20)
	for _, tc := range badSettings {
		t.Run(tc.name, func(t *testing.T) {
			stack := tc.stack
			if stack == "staging" {
				stack = "dev"
				tc.config = map[string]string{"profile": "staging"}
			}
			r, err := declared.Run(stack, declared.Options{Config: tc.config, Secrets: tc.secrets})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.key+":", "the error names the key")
			assert.Contains(t, err.Error(), tc.accepts, "the error says what is accepted")
			assert.Empty(t, r.Resources, "nothing is registered")
			for _, s := range tc.secrets {
				assert.NotContains(t, err.Error(), s, "secrets are never echoed")
			}
		})
	}
}

func TestAcknowledgedUnsafePolicyIsAccepted(t *testing.T) {
	_, err := declared.Run("dev", declared.Options{Config: map[string]string{"redis": `{"maxmemoryPolicy":"allkeys-lru","acknowledgeUnsafeEviction":true}`}})
	require.NoError(t, err)
}

func TestAllErrorsAreReportedAtOnce(t *testing.T) {
	_, err := declared.Run("dev", declared.Options{Config: map[string]string{
		"redis": `{"maxmemory":"1xb","port":0}`, "celery": `{"workerConcurrency":0}`}})
	require.Error(t, err)
	for _, key := range []string{"redis.maxmemory:", "redis.port:", "celery.workerConcurrency:"} {
		assert.True(t, strings.Contains(err.Error(), key), "%s in %v", key, err)
	}
}

// remoteKeys are valid credentials of operations.backup.remote.
var remoteKeys = map[string]string{"backupRemoteAccessKey": "emailclient", "backupRemoteSecretKey": "a-secret-key-of-some-length"}

// remoteOps is an operations object with backups and the remote enabled plus the given remote fields.
func remoteOps(fields string) map[string]string {
	return map[string]string{"operations": `{"backup":{"enabled":true,"remote":{"enabled":true,` + fields + `}}}`}
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range []map[string]string{a, b} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}
