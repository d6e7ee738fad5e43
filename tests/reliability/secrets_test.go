package reliability_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

// distinctivePasswords are configured passwords no other text can contain by chance.
func distinctivePasswords(t testing.TB) map[string]string {
	t.Helper()
	r := func(prefix string) string {
		b := make([]byte, 12)
		_, err := rand.Read(b)
		require.NoError(t, err)
		return prefix + hex.EncodeToString(b)
	}
	return map[string]string{"password": r("Hyg13ne-celery-"), "opsPassword": r("Hyg13ne-ops-")}
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// secretInputs are the declared inputs of the Redis and email-service containers that carry a
// password (or its hash) and must be secret. Any other input may be secret only if it holds one too;
// a plain input must hold none (e.g. the ops containers' env names a password file, not a password).
var secretInputs = map[string]bool{components.FilesCarrier("broker-redis") + ".uploads": true, "email-service-container.envs": true}

func TestSecretHygieneOfDeclaredResources(t *testing.T) {
	secrets := distinctivePasswords(t)
	checked := 0
	for _, stack := range []string{"dev", "prod"} {
		r, err := declared.Run(stack, declared.Options{Secrets: secrets})
		require.NoError(t, err)
		seen := map[string]bool{}
		for _, res := range r.Resources {
			for key, v := range res.Inputs {
				where := stack + " " + res.Name + "." + string(key)
				if secretInputs[res.Name+"."+string(key)] {
					seen[res.Name+"."+string(key)] = true
					assert.True(t, v.IsSecret(), "%s is marked secret", where)
				}
				if v.IsSecret() {
					continue
				}
				for _, s := range propertyStrings(v) {
					noSecret(t, s, where, values(secrets)...)
				}
				checked++
			}
		}
		assert.Len(t, seen, len(secretInputs), "%s declares every input that must be secret: %v", stack, seen)
	}
	t.Logf("FIGURE secrets in declared inputs: %d non-secret inputs of dev and prod hold no password; uploads and envs are secret", checked)
}

func TestSecretHygieneOfARunningBroker(t *testing.T) {
	secrets := distinctivePasswords(t)
	needles := values(secrets)
	b := realredis.Start(t, "dev", realredis.Options{Secrets: secrets})
	ctx := realredis.Ctx(t)
	// Traffic that gets logged at debug level: failed logins, refused commands, a save.
	bad := redis.NewClient(&redis.Options{Addr: b.Addr(), Username: redisconf.CeleryUser, Password: "wrong-" + secrets["password"][:4]})
	defer bad.Close()
	require.Error(t, bad.Ping(ctx).Err())
	celery := b.Client(t, redisconf.CeleryUser)
	require.Error(t, celery.Do(ctx, "config", "get", "*").Err())
	ops := b.Client(t, redisconf.OpsUser)
	require.NoError(t, ops.Save(ctx).Err())

	// The server process: arguments and environment.
	pid := b.Pid()
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	require.NoError(t, err)
	assert.Contains(t, string(cmdline), "redis-server", "the entrypoint exec'd redis-server")
	noSecret(t, string(cmdline), "redis-server's argv", needles...)
	environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	require.NoError(t, err)
	noSecret(t, string(environ), "redis-server's environment", needles...)

	// Every process's argv while the healthcheck and redis-ops run (ps would show them).
	var scans atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			scanArgv(t, needles)
			scans.Add(1)
		}
	}()
	pwFile := filepath.Join(t.TempDir(), "ops.password")
	require.NoError(t, os.WriteFile(pwFile, []byte(secrets["opsPassword"]), 0o600))
	tool(t, "redis-ops") // built before the clock starts
	deadline := time.Now().Add(2 * time.Second)
	checks := 0
	for time.Now().Before(deadline) {
		out, ok := b.Healthcheck(t)
		assert.True(t, ok, out)
		noSecret(t, out, "healthcheck output", needles...)
		res := runTool(t, "redis-ops", t.TempDir(), []string{"REDIS_PASSWORD_FILE=" + pwFile}, "health", "--addr", b.Addr())
		noSecret(t, res.all(), "redis-ops health output", needles...)
		checks++
	}
	close(stop)
	wg.Wait()

	// The Redis log and the files on disk.
	log := b.Log()
	require.NotEmpty(t, log)
	noSecret(t, log, "the Redis log", needles...)
	for _, name := range []string{"redis.conf", "users.acl"} {
		data, err := os.ReadFile(filepath.Join(b.RunDir, name))
		require.NoError(t, err)
		noSecret(t, string(data), name, needles...)
	}
	acl, err := os.ReadFile(filepath.Join(b.RunDir, "users.acl"))
	require.NoError(t, err)
	assert.Contains(t, string(acl), "#"+redisconf.PasswordHash(secrets["password"]), "users.acl holds the SHA-256 only")
	loose := 0
	for _, dir := range []string{b.RunDir, b.DataDir} {
		require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o022 != 0 {
				loose++
				t.Errorf("%s is writable by group or others: %v", p, fi.Mode())
			}
			return nil
		}))
	}
	fi, err := os.Stat(b.RunDir)
	require.NoError(t, err)
	assert.Zero(t, fi.Mode().Perm()&0o077, "the run dir (it holds ops.password) is private: %v", fi.Mode())
	t.Logf("FIGURE secrets on a running broker: password found 0 times in redis-server argv/environ, %d scans of every process's argv during %d healthchecks and redis-ops runs, %d bytes of Redis log, redis.conf, users.acl; %d files with group/other write",
		scans.Load(), checks, len(log), loose)
}

// scanArgv reads every process's command line and fails on a secret.
func scanArgv(t *testing.T, needles []string) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // exited meanwhile
		}
		if _, found := containsAny(string(data), needles...); found {
			comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			t.Errorf("process %s (%s) has a password in its argv (not printed here)", e.Name(), strings.TrimSpace(string(comm)))
		}
	}
}

// childSecretsEnv names the file from which TestSecretHygieneChild reads its passwords.
const childSecretsEnv = "EMAILCLIENT_RELIABILITY_CHILD_SECRETS"

// TestSecretHygieneOfTestOutput runs a real-Redis test verbosely as a separate `go test` process
// (this test binary with -test.run and -test.v) with configured passwords, and scans what it printed.
func TestSecretHygieneOfTestOutput(t *testing.T) {
	realredis.Start(t, "dev", realredis.Options{}).Stop() // skips (or fails) like the tier when redis-server is missing
	secrets := distinctivePasswords(t)
	file := filepath.Join(t.TempDir(), "secrets.json")
	data, err := json.Marshal(secrets)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, data, 0o600))
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSecretHygieneChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), childSecretsEnv+"="+file, binDirEnv+"="+filepath.Dir(tool(t, "redis-ops")))
	out, err := cmd.CombinedOutput()
	text := string(out)
	noSecret(t, text, "the output of the child test run", values(secrets)...)
	require.NoError(t, err, "the child test passes")
	assert.Contains(t, text, "--- PASS: TestSecretHygieneChild")
	assert.Contains(t, text, "child logged", "the child printed what it did")
	t.Logf("FIGURE secrets in test output: a verbose real-Redis test run with configured passwords printed %d bytes, password found 0 times", len(text))
}

// TestSecretHygieneChild is the test run by TestSecretHygieneOfTestOutput; it skips otherwise. It
// logs everything a careless test would: failing logins, refused commands, healthcheck verdicts,
// redis-ops output, validation errors and the Redis log.
func TestSecretHygieneChild(t *testing.T) {
	file := os.Getenv(childSecretsEnv)
	if file == "" {
		t.Skip("run by TestSecretHygieneOfTestOutput")
	}
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var secrets map[string]string
	require.NoError(t, json.Unmarshal(data, &secrets))
	b := realredis.Start(t, "dev", realredis.Options{Secrets: secrets})
	ctx := realredis.Ctx(t)
	bad := redis.NewClient(&redis.Options{Addr: b.Addr(), Username: redisconf.OpsUser, Password: "not-it"})
	defer bad.Close()
	t.Logf("child logged: wrong password: %v", bad.Ping(ctx).Err())
	t.Logf("child logged: celery CONFIG GET: %v", b.Client(t, redisconf.CeleryUser).ConfigGet(ctx, "*").Err())
	out, ok := b.Healthcheck(t)
	t.Logf("child logged: healthcheck: %s (%v)", out, ok)
	out, ok = b.Healthcheck(t, "REDIS_HEALTHCHECK_USER=celery")
	t.Logf("child logged: healthcheck as celery: %s (%v)", out, ok)
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte(secrets["opsPassword"]), 0o600))
	for _, args := range [][]string{{"health", "--addr", b.Addr()}, {"stats", "--addr", b.Addr(), "--top", "3"}, {"health", "--addr", b.Addr(), "--user", "celery"}} {
		res := runTool(t, "redis-ops", t.TempDir(), []string{"REDIS_PASSWORD_FILE=" + pwFile}, args...)
		t.Logf("child logged: redis-ops %v: exit %d: %s", args, res.code, res.all())
	}
	_, err = declared.Run("dev", declared.Options{Secrets: secrets, Config: map[string]string{"redis": `{"maxmemory":"1xb"}`}})
	t.Logf("child logged: validation error with configured passwords: %v", err)
	short := map[string]string{"password": secrets["password"][:20]}
	_, err = declared.Run("prod", declared.Options{Secrets: short})
	t.Logf("child logged: short prod password: %v", err)
	t.Logf("child logged: Redis log:\n%s", b.Log())
}
