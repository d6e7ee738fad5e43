package reliability_test

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

// Passwords of the accepted hostile rows: long enough for every profile, no whitespace or control
// characters (those are refused), everything else a shell, a URL or redis.conf could trip on.
const (
	shellPassword   = `$(touch${IFS}/tmp/pwned)` + "`id`;|&><'\"\\*?!#~%"
	urlPassword     = `p@ss:w/rd?x=1&y#frag%41+;,[]{}-0123456789`
	unicodePassword = "пароль-密码-パスワード-🔑-0123456789"
)

// hostileSetting is one bad or tricky stack setting. reject names the key the error must name; ""
// means the value is accepted and handled safely, with lines that must be in the rendered redis.conf.
type hostileSetting struct {
	name    string
	stack   string
	config  map[string]string
	secrets map[string]string
	reject  string
	// also is a second key a rejection must name (settings that collide name both).
	also  string
	lines []string
	check func(t *testing.T, r *declared.Result)
}

func redisObj(json string) map[string]string     { return map[string]string{"redis": json} }
func containerObj(json string) map[string]string { return map[string]string{"container": json} }
func celeryObj(json string) map[string]string    { return map[string]string{"celery": json} }
func opsObj(json string) map[string]string       { return map[string]string{"operations": json} }
func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

var hostileSettings = []hostileSetting{
	// Settings that collide: two settings naming one Docker or host object, objects Docker or the host
	// reserves, and settings that together lose queued tasks silently.
	{name: "network host (Docker's)", config: containerObj(`{"network":"host"}`), reject: "container.network"},
	{name: "network bridge (Docker's)", config: containerObj(`{"network":"bridge"}`), reject: "container.network"},
	{name: "network none (Docker's)", config: containerObj(`{"network":"none"}`), reject: "container.network"},
	{name: "backup volume is the data volume", stack: "prod", config: merge(containerObj(`{"dataHostPath":""}`), opsObj(`{"backup":{"enabled":true,"volume":"emailclient-prod-redis-data"}}`)), reject: "container.volume", also: "operations.backup.volume"},
	{name: "backup volume is the run volume", stack: "prod", config: opsObj(`{"backup":{"enabled":true,"volume":"emailclient-prod-redis-run"}}`), reject: "container.name", also: "operations.backup.volume"},
	{name: "data volume is the run volume", config: containerObj(`{"volume":"emailclient-dev-redis-run"}`), reject: "container.name", also: "container.volume"},
	{name: "metrics host port is Redis's (dev)", config: opsObj(`{"metrics":{"enabled":true,"hostPort":6379}}`), reject: "container.hostPort", also: "operations.metrics.hostPort"},
	{name: "metrics host port on another loopback address", config: opsObj(`{"metrics":{"enabled":true,"hostPort":6379,"hostIp":"127.0.0.2"}}`)},
	{name: "email-service named as the files carrier", config: map[string]string{"emailService": `{"name":"emailclient-dev-redis-files"}`}, reject: "container.name", also: "emailService.name"},
	{name: "email-service named as the backup container", stack: "prod", config: map[string]string{"emailService": `{"name":"emailclient-prod-redis-backup","image":"ghcr.io/acme/email@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`}, reject: "container.name", also: "emailService.name"},
	{name: "email-service named as a sentinel node", stack: "prod", config: map[string]string{"topology": `{"mode":"sentinel"}`, "emailService": `{"name":"emailclient-prod-redis-sentinel-2","image":"ghcr.io/acme/email@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`}, reject: "container.name", also: "emailService.name"},
	{name: "email-service named as Redis", config: map[string]string{"emailService": `{"name":"emailclient-dev-redis"}`}, reject: "container.name", also: "emailService.name"},
	{name: "backup volume is a sentinel node's data", stack: "prod", config: merge(containerObj(`{"dataHostPath":""}`), map[string]string{"topology": `{"mode":"sentinel"}`}, opsObj(`{"backup":{"volume":"emailclient-prod-redis-data-1"}}`)), reject: "container.volume", also: "operations.backup.volume"},
	{name: "backups inside the data host path", stack: "prod", config: opsObj(`{"backup":{"hostPath":"/srv/emailclient/redis/backups"}}`), reject: "container.dataHostPath", also: "operations.backup.hostPath"},
	{name: "data inside the backup host path", stack: "prod", config: merge(containerObj(`{"dataHostPath":"/srv/backups/redis"}`), opsObj(`{"backup":{"hostPath":"/srv/backups"}}`)), reject: "container.dataHostPath", also: "operations.backup.hostPath"},
	{name: "backups beside the data host path", stack: "prod", config: opsObj(`{"backup":{"hostPath":"/srv/emailclient/redis-backups"}}`)},
	{name: "data host path is /", stack: "prod", config: containerObj(`{"dataHostPath":"/"}`), reject: "container.dataHostPath"},
	{name: "data host path in Docker's state", stack: "prod", config: containerObj(`{"dataHostPath":"/var/lib/docker/volumes/redis"}`), reject: "container.dataHostPath"},
	{name: "data host path emptied at boot", stack: "prod", config: containerObj(`{"dataHostPath":"/tmp/redis"}`), reject: "container.dataHostPath"},
	{name: "data host path in /etc", stack: "prod", config: containerObj(`{"dataHostPath":"/etc/redis"}`), reject: "container.dataHostPath"},
	{name: "sentinel data host path in /proc", stack: "prod", config: merge(containerObj(`{"dataHostPath":"/proc/x"}`), map[string]string{"topology": `{"mode":"sentinel"}`}), reject: "container.dataHostPath"},
	{name: "backup host path in /usr", stack: "prod", config: opsObj(`{"backup":{"hostPath":"/usr/local/backups"}}`), reject: "operations.backup.hostPath"},
	{name: "image built FROM itself", config: containerObj(`{"imageName":"redis:7-alpine"}`), reject: "container.baseImage", also: "container.imageName"},
	{name: "image tag of the ops image", stack: "prod", config: containerObj(`{"imageName":"emailclient-redis-ops:emailclient-prod-redis"}`), reject: "container.imageName", also: "container.name"},
	{name: "image tag of the reference worker", config: containerObj(`{"imageName":"emailclient-email-worker:emailclient-dev-email-service"}`), reject: "container.imageName", also: "emailService.name"},
	{name: "email-service runs the Redis image", stack: "prod", config: map[string]string{"emailService": `{"image":"emailclient-redis:prod"}`}, reject: "emailService.image", also: "container.imageName"},
	{name: "reference worker built FROM itself", config: map[string]string{"emailService": `{"baseImage":"emailclient-email-worker:emailclient-dev-email-service"}`}, reject: "emailService.baseImage"},
	// The engine a stack deploys to, and what stops and limits a container.
	{name: "docker host unset", config: map[string]string{"docker:host": ""}, reject: "docker:host"},
	{name: "docker host without scheme", config: map[string]string{"docker:host": "/var/run/docker.sock"}, reject: "docker:host"},
	{name: "docker host http scheme", config: map[string]string{"docker:host": "http://db-1:2375"}, reject: "docker:host"},
	{name: "docker host scheme only", config: map[string]string{"docker:host": "ssh://"}, reject: "docker:host"},
	{name: "docker host with a newline", config: map[string]string{"docker:host": "ssh://db-1\nrm"}, reject: "docker:host"},
	{name: "docker host over ssh", config: map[string]string{"docker:host": "ssh://deploy@db-1"}, lines: []string{"appendonly yes"}},
	{name: "redis stop grace too short to save", config: containerObj(`{"stopGraceSeconds":5}`), reject: "container.stopGraceSeconds"},
	{name: "redis stop grace negative", config: containerObj(`{"stopGraceSeconds":-1}`), reject: "container.stopGraceSeconds"},
	{name: "email-service killed at once", config: map[string]string{"emailService": `{"stopGraceSeconds":0}`}, reject: "emailService.stopGraceSeconds"},
	{name: "email-service processes below a worker's", config: map[string]string{"emailService": `{"maxProcesses":4}`}, reject: "emailService.maxProcesses"},
	{name: "email-service memory without unit", config: map[string]string{"emailService": `{"memory":"1024"}`}, reject: "emailService.memory"},
	{name: "email-service probe without a program", config: map[string]string{"emailService": `{"healthcheck":{"command":["CMD"]}}`}, reject: "emailService.healthcheck.command"},
	{name: "email-service probe as a bare string", config: map[string]string{"emailService": `{"healthcheck":{"command":["curl -f localhost"]}}`}, reject: "emailService.healthcheck.command"},
	{name: "email-service probe NONE with args", config: map[string]string{"emailService": `{"healthcheck":{"command":["NONE","x"]}}`}, reject: "emailService.healthcheck.command"},
	{name: "email-service probe timeout not below interval", config: map[string]string{"emailService": `{"healthcheck":{"interval":"5s","timeout":"5s"}}`}, reject: "emailService.healthcheck.timeout"},
	{name: "email-service probe every 100ms", config: map[string]string{"emailService": `{"healthcheck":{"interval":"100ms"}}`}, reject: "emailService.healthcheck.interval"},
	{name: "email-service watchdog faster than its heartbeats", config: map[string]string{"emailService": `{"stallExitSeconds":5}`}, reject: "emailService.stallExitSeconds"},
	{name: "email-service own shell probe, watchdog off", config: map[string]string{"emailService": `{"healthcheck":{"command":["CMD-SHELL","test -e /tmp/ok"]},"stallExitSeconds":0}`}, lines: []string{"maxmemory 512mb"}},
	{name: "reject on worker lost without acks late", config: map[string]string{"celery": `{"rejectOnWorkerLost":true,"acksLate":false}`}, reject: "celery.rejectOnWorkerLost"},
	{name: "protect not a boolean", config: map[string]string{"protect": `"yes"`}, reject: "protect"},
	// Images: prod runs the email-service by content; base images may be pinned by digest anywhere.
	{name: "prod email image by tag", stack: "prod", config: map[string]string{"emailService": `{"image":"ghcr.io/acme/email:stable"}`}, reject: "emailService.image"},
	{name: "prod email image latest", stack: "prod", config: map[string]string{"emailService": `{"image":"ghcr.io/acme/email"}`}, reject: "emailService.image"},
	{name: "prod email digest upper-case", stack: "prod", config: map[string]string{"emailService": `{"image":"ghcr.io/acme/email@sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`}, reject: "emailService.image"},
	{name: "prod email digest short", stack: "prod", config: map[string]string{"emailService": `{"image":"ghcr.io/acme/email@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`}, reject: "emailService.image"},
	{name: "prod email digest sha512", stack: "prod", config: map[string]string{"emailService": `{"image":"ghcr.io/acme/email@sha512:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`}, reject: "emailService.image"},
	{name: "prod email tag and digest", stack: "prod", config: map[string]string{"emailService": `{"image":"ghcr.io/acme/email:1.4@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`}, lines: []string{"maxmemory 1gb"}},
	{name: "prod email local image ID", stack: "prod", config: map[string]string{"emailService": `{"image":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`}, lines: []string{"maxmemory 1gb"}},
	{name: "dev email image by tag", config: map[string]string{"emailService": `{"image":"ghcr.io/acme/email:stable"}`}, lines: []string{"maxmemory 512mb"}},
	{name: "redis base image by digest", config: containerObj(`{"baseImage":"redis@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`), lines: []string{"maxmemory 512mb"}},
	{name: "no AOF: snapshots only", config: redisObj(`{"appendonly":false}`), reject: "redis.appendonly", also: "redis.save"},
	{name: "no AOF and no snapshots", config: redisObj(`{"appendonly":false,"save":[]}`), reject: "redis.appendonly", also: "redis.save"},
	{name: "no AOF, acknowledged", config: redisObj(`{"appendonly":false,"acknowledgeTaskLoss":true}`), lines: []string{"appendonly no"}},
	// Units, unicode and injection in redis.conf values.
	{name: "maxmemory fullwidth digits", config: redisObj(`{"maxmemory":"５１２mb"}`), reject: "redis.maxmemory"},
	{name: "maxmemory zero-width space", config: redisObj(`{"maxmemory":"512mb\u200b"}`), reject: "redis.maxmemory"},
	{name: "maxmemory tab inside", config: redisObj(`{"maxmemory":"512\tmb"}`), reject: "redis.maxmemory"},
	{name: "maxmemory CRLF injection", config: redisObj(`{"maxmemory":"512mb\r\nrequirepass x"}`), reject: "redis.maxmemory"},
	{name: "maxmemory NUL", config: redisObj(`{"maxmemory":"512mb\u0000"}`), reject: "redis.maxmemory"},
	{name: "maxmemory negative", config: redisObj(`{"maxmemory":"-512mb"}`), reject: "redis.maxmemory"},
	{name: "maxmemory empty", config: redisObj(`{"maxmemory":""}`), reject: "redis.maxmemory"},
	{name: "maxmemory fraction", config: redisObj(`{"maxmemory":"0.5gb"}`), reject: "redis.maxmemory"},
	{name: "maxmemory above 1 TiB", config: redisObj(`{"maxmemory":"1025gb"}`), reject: "redis.maxmemory"},
	{name: "maxmemory unknown unit tb", config: redisObj(`{"maxmemory":"1tb"}`), reject: "redis.maxmemory"},
	{name: "maxmemory below 1mb", config: redisObj(`{"maxmemory":"1023kb"}`), reject: "redis.maxmemory"},
	{name: "policy newline injection", config: redisObj(`{"maxmemoryPolicy":"volatile-lru\nrequirepass x"}`), reject: "redis.maxmemoryPolicy"},
	{name: "policy upper case", config: redisObj(`{"maxmemoryPolicy":"VOLATILE-LRU"}`), reject: "redis.maxmemoryPolicy"},
	{name: "appendfsync rename-command injection", config: redisObj(`{"appendfsync":"everysec\nrename-command CONFIG \"\""}`), reject: "redis.appendfsync"},
	{name: "loglevel with comment", config: redisObj(`{"loglevel":"notice # x"}`), reject: "redis.loglevel"},
	{name: "rewrite min size save injection", config: redisObj(`{"autoAofRewriteMinSize":"64mb\nsave 1 1"}`), reject: "redis.autoAofRewriteMinSize"},
	{name: "rewrite percentage negative", config: redisObj(`{"autoAofRewritePercentage":-1}`), reject: "redis.autoAofRewritePercentage"},
	{name: "rewrite percentage huge", config: redisObj(`{"autoAofRewritePercentage":1000000}`), reject: "redis.autoAofRewritePercentage"},
	{name: "samples 65", config: redisObj(`{"maxmemorySamples":65}`), reject: "redis.maxmemorySamples"},
	{name: "port 0", config: redisObj(`{"port":0}`), reject: "redis.port"},
	{name: "port 1e20", config: redisObj(`{"port":1e20}`), reject: "redis.port"},
	{name: "port fraction", config: redisObj(`{"port":6379.5}`), reject: "redis.port"},
	{name: "port boolean", config: redisObj(`{"port":true}`), reject: "redis.port"},
	// Redis reads a save point's changes as a C int: 4294967295 becomes -1 and Redis then runs BGSAVE
	// every second whether or not anything changed (measured with redis-server 7.0.15: CONFIG GET
	// save answers "1 -1").
	{name: "save changes above int32", config: redisObj(`{"save":[{"seconds":1,"changes":4294967295}]}`), reject: "redis.save[0]"},
	{name: "save seconds negative", config: redisObj(`{"save":[{"seconds":-5,"changes":1}]}`), reject: "redis.save[0]"},
	{name: "save as a string", config: redisObj(`{"save":"900 1"}`), reject: "redis.save"},
	{name: "requirepass as a setting", config: redisObj(`{"requirepass":"x"}`), reject: "redis.requirepass"},
	{name: "trailing JSON object", config: redisObj(`{"port":6380} {"port":1}`), reject: "redis"},
	// Container: values that reach Docker arguments, paths and the published port.
	{name: "container name newline", config: containerObj(`{"name":"redis\nx"}`), reject: "container.name"},
	{name: "network with space", config: containerObj(`{"network":"net work"}`), reject: "container.network"},
	{name: "volume path traversal", config: containerObj(`{"volume":"../../etc"}`), reject: "container.volume"},
	{name: "host path command substitution", stack: "prod", config: containerObj(`{"dataHostPath":"/srv/$(reboot)"}`), reject: "container.dataHostPath"},
	{name: "host path traversal", stack: "prod", config: containerObj(`{"dataHostPath":"/srv/redis/../../etc"}`), reject: "container.dataHostPath"},
	{name: "host path unicode", stack: "prod", config: containerObj(`{"dataHostPath":"/srv/émail"}`), reject: "container.dataHostPath"},
	{name: "host path trailing newline", stack: "prod", config: containerObj(`{"dataHostPath":"/srv/redis\n"}`), reject: "container.dataHostPath"},
	{name: "host ip name", config: containerObj(`{"hostIp":"localhost"}`), reject: "container.hostIp"},
	{name: "host ip short form", config: containerObj(`{"hostIp":"127.1"}`), reject: "container.hostIp"},
	{name: "host ip newline", config: containerObj(`{"hostIp":"127.0.0.1\n"}`), reject: "container.hostIp"},
	{name: "host port 65536", config: containerObj(`{"hostPort":65536}`), reject: "container.hostPort"},
	{name: "healthcheck interval negative", config: containerObj(`{"healthcheck":{"interval":"-30s","timeout":"10s","retries":3,"startPeriod":"5s"}}`), reject: "container.healthcheck.interval"},
	{name: "healthcheck startInterval 10ms", config: containerObj(`{"healthcheck":{"interval":"5s","timeout":"3s","retries":3,"startPeriod":"30s","startInterval":"10ms"}}`), reject: "container.healthcheck.startInterval"},
	{name: "healthcheck retries 0", config: containerObj(`{"healthcheck":{"interval":"30s","timeout":"10s","retries":0,"startPeriod":"5s"}}`), reject: "container.healthcheck.retries"},
	{name: "memory shell injection", stack: "prod", config: containerObj(`{"memory":"2gb; rm -rf /"}`), reject: "container.memory"},
	{name: "cpus exponent", stack: "prod", config: containerObj(`{"cpus":"1e2"}`), reject: "container.cpus"},
	{name: "cpu shares 1", stack: "prod", config: containerObj(`{"cpuShares":1}`), reject: "container.cpuShares"},
	{name: "log size flag injection", config: containerObj(`{"log":{"maxSize":"10m\n--privileged","maxFile":3}}`), reject: "container.log.maxSize"},
	{name: "base image Dockerfile injection", config: containerObj(`{"baseImage":"redis:7-alpine\nRUN curl x|sh"}`), reject: "container.baseImage"},
	// Celery and the email-service: values that end up in env entries.
	{name: "accept pickle among others", config: celeryObj(`{"acceptContent":["json","pickle"]}`), reject: "celery.acceptContent[1]"},
	{name: "accept content with comma", config: celeryObj(`{"acceptContent":["json,pickle"]}`), reject: "celery.acceptContent[0]"},
	{name: "celery log level upper case", config: celeryObj(`{"logLevel":"INFO"}`), reject: "celery.logLevel"},
	{name: "celery database negative", config: celeryObj(`{"database":-1}`), reject: "celery.database"},
	{name: "celery time limit 0", config: celeryObj(`{"taskTimeLimit":0}`), reject: "celery.taskTimeLimit"},
	{name: "result expiry huge", config: celeryObj(`{"resultExpires":9999999999}`), reject: "celery.resultExpires"},
	{name: "image with command", config: map[string]string{"emailService": `{"image":"ghcr.io/a/b:1;rm -rf /"}`}, reject: "emailService.image"},
	{name: "service name NUL", config: map[string]string{"emailService": `{"name":"a\u0000b"}`}, reject: "emailService.name"},
	// Passwords and profile.
	{name: "password with tab", secrets: map[string]string{"password": "0123456789abcdef\t0123456789abcdef"}, reject: "password"},
	{name: "password with line separator", secrets: map[string]string{"password": "0123456789abcdef\u20280123456789abcdef"}, reject: "password"},
	{name: "password with NUL", secrets: map[string]string{"opsPassword": "0123456789abcdef\x000123456789abcdef"}, reject: "opsPassword"},
	{name: "password of 513 characters", secrets: map[string]string{"opsPassword": strings.Repeat("a", 513)}, reject: "opsPassword"},
	{name: "password in plain config", config: map[string]string{"password": "0123456789abcdef0123456789abcdef"}, reject: "password"},
	{name: "profile with newline", config: map[string]string{"profile": "dev\nprod"}, reject: "profile"},

	// Accepted, handled safely.
	{name: "maxmemory upper-case unit", config: redisObj(`{"maxmemory":"768MB"}`), lines: []string{"maxmemory 768mb"}},
	{name: "maxmemory Kelvin sign unit", config: redisObj(`{"maxmemory":"2048\u212Ab"}`), lines: []string{"maxmemory 2048kb"}},
	{name: "maxmemory leading zeros", config: redisObj(`{"maxmemory":"0001gb"}`), lines: []string{"maxmemory 0001gb"}},
	{name: "duplicate key, last wins", config: redisObj(`{"port":6380,"port":6381}`), lines: []string{"port 6381"}},
	{name: "key in other case", config: redisObj(`{"MAXMEMORY":"640mb"}`), lines: []string{"maxmemory 640mb"}},
	{name: "save empty list", config: redisObj(`{"save":[]}`), lines: []string{`save ""`}},
	{name: "save null", config: redisObj(`{"save":null}`), lines: []string{`save ""`}},
	{name: "redis null object", config: redisObj(`null`), lines: []string{"maxmemory 512mb", "maxmemory-policy volatile-lru"}},
	{name: "password with shell metacharacters", secrets: map[string]string{"password": shellPassword, "opsPassword": shellPassword + "-ops"}},
	{name: "password with URL delimiters", secrets: map[string]string{"password": urlPassword, "opsPassword": urlPassword + "-ops"}},
	{name: "password in unicode", stack: "prod", secrets: map[string]string{"password": unicodePassword + "-celery-0123456789", "opsPassword": unicodePassword + "-ops-0123456789"}},
	{name: "host ip ::1", config: containerObj(`{"hostIp":"::1"}`), check: func(t *testing.T, r *declared.Result) {
		ports := realredis.Inputs(r)["ports"].ArrayValue()
		require.Len(t, ports, 1)
		assert.Equal(t, "::1", ports[0].ObjectValue()["ip"].StringValue())
	}},
	{name: "host path starting with dash", stack: "prod", config: containerObj(`{"dataHostPath":"/srv/-rf"}`), check: func(t *testing.T, r *declared.Result) {
		assert.Contains(t, propertyStrings(realredis.Inputs(r)["volumes"]), "/srv/-rf", "a bind mount source, never a shell word")
	}},
	{name: "accept content two types", config: celeryObj(`{"acceptContent":["json","yaml"]}`), check: func(t *testing.T, r *declared.Result) {
		assert.Contains(t, envOf(t, r), "CELERY_ACCEPT_CONTENT=json,yaml")
	}},
	{name: "healthcheck interval 24h", config: containerObj(`{"healthcheck":{"interval":"24h","timeout":"10s","retries":3,"startPeriod":"0s"}}`)},
}

var (
	directiveLine = regexp.MustCompile(`^[a-z-]+( ("[^"\\\x00-\x1f]*"|[^\s"\\\x00-\x1f]+))*$`)
	envEntry      = regexp.MustCompile(`^[A-Z][A-Z0-9_]*=[^\s\x00-\x1f\x7f]*$`)
)

func TestHostileSettings(t *testing.T) {
	rejected, accepted := 0, 0
	defaults := renderedDirectiveNames(t, "dev")
	for _, tc := range hostileSettings {
		t.Run(tc.name, func(t *testing.T) {
			stack := tc.stack
			if stack == "" {
				stack = "dev"
			}
			var secretValues []string
			for _, v := range tc.secrets {
				secretValues = append(secretValues, v)
			}
			r, err := declared.Run(stack, declared.Options{Config: tc.config, Secrets: tc.secrets})
			if tc.reject != "" {
				rejected++
				require.Error(t, err, "must be rejected")
				noSecret(t, err.Error(), "the error", secretValues...)
				assert.Contains(t, err.Error(), tc.reject+":", "the error names the input")
				if tc.also != "" {
					assert.Contains(t, err.Error(), tc.also+":", "the error names both colliding settings")
				}
				assert.Empty(t, r.Resources, "nothing is declared")
				return
			}
			accepted++
			require.NoError(t, err)
			up := realredis.Uploads(t, r)
			conf := up[redisconf.ConfigFile]
			lines := strings.Split(strings.TrimSuffix(conf, "\n"), "\n")
			var names []string
			for _, l := range lines {
				if strings.HasPrefix(l, "#") {
					continue
				}
				assert.Regexp(t, directiveLine, l, "one directive per line, every value a single token")
				names = append(names, strings.Fields(l)[0])
			}
			assert.Equal(t, defaults, names, "exactly the declared directives, in order: nothing injected")
			for _, want := range tc.lines {
				assert.Contains(t, lines, want)
			}
			acl := strings.Split(strings.TrimSuffix(up[redisconf.ACLFile], "\n"), "\n")
			require.Len(t, acl, 4, "four ACL users")
			for i, u := range []string{"default", redisconf.CeleryUser, redisconf.OpsUser, redisconf.MonitorUser} {
				assert.True(t, strings.HasPrefix(acl[i], "user "+u+" "), "ACL line %d is user %s", i, u)
			}
			if pw, ok := tc.secrets["password"]; ok {
				assert.Contains(t, acl[1], " #"+redisconf.PasswordHash(pw), "the celery user's hash")
			}
			if pw, ok := tc.secrets["opsPassword"]; ok {
				assert.Contains(t, acl[2], " #"+redisconf.PasswordHash(pw), "the ops user's hash")
				assert.True(t, up[redisconf.OpsPasswordFile] == pw, "ops.password holds exactly the password")
			}
			noSecret(t, conf+up[redisconf.ACLFile], "redis.conf and users.acl", secretValues...)
			env := envOf(t, r)
			require.Len(t, env, 15, "the email-service env: 14 CELERY_* and EMAILWORKER_STALL_EXIT_SECONDS")
			for _, e := range env {
				if !envEntry.MatchString(e) {
					t.Errorf("env entry %q is not a single KEY=value", strings.SplitN(e, "=", 2)[0])
				}
				noSecret(t, e, "env entry "+strings.SplitN(e, "=", 2)[0], secretValues...)
			}
			if pw, ok := tc.secrets["password"]; ok {
				for _, e := range env {
					if v, ok := strings.CutPrefix(e, "CELERY_BROKER_URL="); ok {
						u, err := url.Parse(v)
						require.NoError(t, err)
						got, _ := u.User.Password()
						assert.True(t, got == pw, "the URL decodes to the configured password")
						assert.Equal(t, "redis:6379", u.Host)
						assert.Equal(t, "/0", u.Path)
					}
				}
			}
			cmd := realredis.Inputs(r)["command"]
			assert.Equal(t, []string{redisconf.ConfigFile}, propertyStrings(cmd), "the container's command is the config path only")
			assert.False(t, realredis.Inputs(r)["entrypoints"].HasValue(), "no shell entrypoint is declared")
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
	require.GreaterOrEqual(t, rejected+accepted, 40)
	t.Logf("FIGURE hostile settings: %d rows, %d rejected naming the input, %d accepted with exactly the declared redis.conf directives and single KEY=value env entries", rejected+accepted, rejected, accepted)
}

// renderedDirectiveNames are the directive names of a stack's rendered redis.conf with no overrides.
func renderedDirectiveNames(t *testing.T, stack string) []string {
	r, err := declared.Run(stack, declared.Options{})
	require.NoError(t, err)
	var names []string
	for _, l := range strings.Split(strings.TrimSuffix(realredis.Uploads(t, r)[redisconf.ConfigFile], "\n"), "\n") {
		if !strings.HasPrefix(l, "#") {
			names = append(names, strings.Fields(l)[0])
		}
	}
	return names
}

// envOf returns the email-service container's env entries (the secret array, unwrapped).
func envOf(t *testing.T, r *declared.Result) []string {
	t.Helper()
	c, ok := r.Get(declared.ContainerType, "email-service-container")
	require.True(t, ok, "the email-service container is declared")
	envs := c.Inputs["envs"]
	require.True(t, envs.IsSecret(), "the env array is secret")
	var out []string
	for _, e := range envs.SecretValue().Element.ArrayValue() {
		out = append(out, e.StringValue())
	}
	return out
}

// hostileArg is one bad command-line invocation of redis-ops or redis-config.
type hostileArg struct {
	name string
	tool string
	args []string
	env  []string
	// code is the exit code expected; names is text the output must contain (the input it refuses).
	code  int
	names string
}

func TestHostileCLIArguments(t *testing.T) {
	secret := "Cli-Secret-" + strings.Repeat("z9", 12)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte(secret), 0o600))
	root := projectRoot(t)
	// A stack file outside the project, reached through the stack name.
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "evil.yaml"),
		[]byte("config:\n  emailclient-infra:profile: dev\n  emailclient-infra:redis:\n    maxmemory: 7mb\n"), 0o644))
	traversal := strings.Repeat("/..", strings.Count(root, "/")+1) + outside + "/evil"
	unreachable := []string{"--addr", "127.0.0.1:1"}
	withPw := []string{"REDIS_PASSWORD_FILE=" + pwFile}
	cases := []hostileArg{
		{"timeout not a duration", "redis-ops", []string{"health", "--timeout", "abc"}, withPw, 2, "-timeout"},
		{"timeout negative", "redis-ops", append([]string{"health", "--timeout", "-1s"}, unreachable...), withPw, 2, "--timeout"},
		{"timeout zero", "redis-ops", append([]string{"health", "--timeout", "0"}, unreachable...), withPw, 2, "--timeout"},
		{"interval zero", "redis-ops", append([]string{"monitor", "--interval", "0"}, unreachable...), withPw, 2, "--interval"},
		{"interval negative", "redis-ops", append([]string{"monitor", "--interval", "-5s"}, unreachable...), withPw, 2, "--interval"},
		{"interval without unit", "redis-ops", []string{"monitor", "--interval", "5"}, withPw, 2, "-interval"},
		{"retention not a duration", "redis-ops", []string{"backup", "--dir", dir, "--retention", "a week"}, withPw, 2, "-retention"},
		{"retention negative", "redis-ops", append([]string{"backup", "--dir", dir, "--retention", "-1h"}, unreachable...), withPw, 2, "--retention"},
		{"backup without dir", "redis-ops", []string{"backup"}, withPw, 2, "--dir"},
		{"memory-warn negative", "redis-ops", append([]string{"health", "--memory-warn", "-5"}, unreachable...), withPw, 2, "--memory-warn"},
		{"addr with newline", "redis-ops", []string{"health", "--addr", "127.0.0.1:1\nINFO"}, withPw, 2, "--addr"},
		{"password file missing", "redis-ops", append([]string{"health", "--password-file", "/nonexistent/pw"}, unreachable...), nil, 2, "/nonexistent/pw"},
		{"password file is a directory", "redis-ops", append([]string{"health", "--password-file", dir}, unreachable...), nil, 2, dir},
		{"url with bad port carries the password", "redis-ops", []string{"health", "--url", "redis://ops:" + secret + "@127.0.0.1:badport/0"}, nil, 2, "--url"},
		{"REDIS_URL with bad port carries the password", "redis-ops", []string{"health"}, []string{"REDIS_URL=redis://ops:" + secret + "@127.0.0.1:badport/0"}, 2, "url"},
		{"verify without file", "redis-ops", []string{"verify"}, nil, 2, "FILE"},
		{"verify two files", "redis-ops", []string{"verify", "a", "b"}, nil, 2, "FILE"},
		{"restore without file", "redis-ops", []string{"restore"}, nil, 2, "FILE"},
		{"analyze batch 0", "redis-ops", append([]string{"analyze", "--batch", "0"}, unreachable...), withPw, 2, "--batch"},
		{"unknown command", "redis-ops", []string{"flushall"}, nil, 2, `"flushall"`},
		{"unknown flag", "redis-ops", []string{"health", "--password", secret}, nil, 2, "-password"},
		{"slowlog count not a number", "redis-ops", []string{"slowlog", "--count", "ten"}, withPw, 2, "-count"},
		{"config stack ../etc", "redis-config", []string{"--stack", "../etc"}, nil, 1, `"../etc"`},
		{"config unknown stack", "redis-config", []string{"--stack", "staging"}, nil, 1, `"staging"`},
		{"config empty stack", "redis-config", []string{"--stack", ""}, nil, 1, `""`},
		{"config stack with newline", "redis-config", []string{"--stack", "dev\nprod"}, nil, 1, `dev\nprod`},
		{"config stack path outside the project", "redis-config", []string{"--stack", traversal}, nil, 1, "stack"},
		{"config unknown flag", "redis-config", []string{"--stacks", "dev"}, nil, 2, "-stacks"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := runTool(t, tc.tool, root, tc.env, tc.args...)
			noSecret(t, res.all(), tc.tool+" output", secret)
			assert.Equal(t, tc.code, res.code, "exit code; output: %s", strings.ReplaceAll(res.all(), secret, "<secret>"))
			assert.Contains(t, res.all(), tc.names, "the message names the input")
			if tc.tool == "redis-config" {
				assert.NotContains(t, res.stdout, "maxmemory", "no redis.conf is printed for a refused stack")
			}
		})
	}
	t.Logf("FIGURE hostile CLI arguments: %d invocations of redis-ops and redis-config", len(cases))
}
