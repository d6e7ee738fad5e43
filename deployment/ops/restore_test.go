package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

func compareSnapshots(t *testing.T, before, after map[string]redistest.Key) {
	t.Helper()
	if len(after) != len(before) {
		t.Errorf("restored %d keys, want %d", len(after), len(before))
	}
	for k, b := range before {
		a, ok := after[k]
		if !ok {
			t.Errorf("key %q missing after restore", k)
			continue
		}
		if a.Type != b.Type || a.Value != b.Value {
			t.Errorf("key %q: %s %v, want %s %v", k, a.Type, a.Value, b.Type, b.Value)
		}
		if !redistest.SameTTL(a.TTL, b.TTL, time.Minute) {
			t.Errorf("key %q: ttl %v, want about %v", k, a.TTL, b.TTL)
		}
	}
}

// Names of the fake engine's containers.
const (
	fakeRedis  = "redis"
	fakeEmail  = "email"
	fakeBackup = "backup"
	fakeHost   = "unix:///fake/docker.sock"
)

// fakeEngine stands in for the Docker engine: the Redis container is a redis-server process
// (tests/redistest) whose data dir plays /data; exec and the helper container run the very same
// shell scripts with /bin/sh here (RunDir and DataDir arguments mapped to local directories); the
// other containers are running flags. It records the calls that change something and fails the
// failAt-th of them (1-based; 0 never), before doing it or, with failAfter, after.
type fakeEngine struct {
	t         *testing.T
	srv       *redistest.Server
	runDir    string
	backups   string // /backups of the backup container
	redisCmd  []string
	running   map[string]bool
	calls     []string
	failAt    int
	failAfter bool
	dialed    string // the host restore asked for
	tick      int    // the fake clock: a minute per call of now
}

// newFake starts the Redis of a fake engine holding one key, "pre-restore": the data a restore
// replaces (and keeps aside).
func newFake(t *testing.T) *fakeEngine {
	t.Helper()
	f := &fakeEngine{t: t, runDir: t.TempDir(), backups: t.TempDir(), redisCmd: []string{redisconf.ConfigFile},
		running: map[string]bool{fakeEmail: true, fakeBackup: true}}
	f.srv = redistest.Start(t, redistest.Options{Args: redisArgs(t)})
	if err := opsClient(t, f.srv).Set(context.Background(), "pre-restore", "kept aside", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"redis.conf": fmt.Sprintf("port %d\n", f.srv.Port()), "ops.password": testPassword + "\n"} {
		if err := os.WriteFile(filepath.Join(f.runDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

type notFoundError struct{ name string }

func (e notFoundError) Error() string { return "No such container: " + e.name }
func (notFoundError) NotFound()       {}

func (f *fakeEngine) host() string { return fakeHost }
func (f *fakeEngine) close() error { return nil }

func (f *fakeEngine) call(name string, do func() error) error {
	f.calls = append(f.calls, name)
	n := len(f.calls)
	if n == f.failAt && !f.failAfter {
		return fmt.Errorf("injected failure before %s", name)
	}
	if err := do(); err != nil {
		return err
	}
	if n == f.failAt {
		return fmt.Errorf("injected failure after %s", name)
	}
	return nil
}

func (f *fakeEngine) inspect(_ context.Context, name string) (ctrInfo, error) {
	if name == fakeRedis {
		timeout := 36
		c := ctrInfo{name: name, id: name, image: "sha256:fake-redis-image", user: "999:1000", running: f.srv.Running(),
			stopTimeout: &timeout, cmd: f.redisCmd, data: mount.Mount{Type: mount.TypeVolume, Source: "fake-redis-data", Target: redisconf.DataDir}}
		if c.running {
			c.health = "healthy"
		}
		return c, nil
	}
	if running, ok := f.running[name]; ok {
		timeout := 60
		return ctrInfo{name: name, id: name, running: running, stopTimeout: &timeout}, nil
	}
	return ctrInfo{}, notFoundError{name}
}

func (f *fakeEngine) stop(_ context.Context, c ctrInfo) error {
	return f.call("stop "+c.name, func() error {
		if c.name == fakeRedis {
			f.srv.Stop()
		} else {
			f.running[c.name] = false
		}
		return nil
	})
}

func (f *fakeEngine) start(_ context.Context, c ctrInfo) error {
	return f.call("start "+c.name, func() error {
		if c.name != fakeRedis {
			f.running[c.name] = true
		} else if !f.srv.Running() {
			f.srv.Restart(f.t)
		}
		return nil
	})
}

// sh runs script with /bin/sh in dir, the container paths among args mapped to the local ones.
func (f *fakeEngine) sh(dir, script string, args ...string) (string, error) {
	mapped := []string{"-c", script, "sh"}
	for _, a := range args {
		switch a {
		case redisconf.RunDir:
			a = f.runDir
		case redisconf.DataDir:
			a = f.srv.Dir()
		}
		mapped = append(mapped, a)
	}
	cmd := exec.Command("sh", mapped...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (f *fakeEngine) exec(_ context.Context, c ctrInfo, cmd ...string) (string, error) {
	var out string
	err := f.call("exec "+cmd[len(cmd)-1], func() error {
		if c.name != fakeRedis || !f.srv.Running() || len(cmd) < 4 || cmd[0] != "sh" || cmd[1] != "-c" {
			return fmt.Errorf("fake exec: %s %v", c.name, cmd)
		}
		var err error
		out, err = f.sh(f.srv.Dir(), cmd[2], cmd[4:]...)
		return err
	})
	return out, err
}

func (f *fakeEngine) inData(_ context.Context, c ctrInfo, file, fileName, script string, args ...string) (string, error) {
	name := map[string]string{beginScript: "inData begin", layInScript: "inData lay-in"}[script]
	var out string
	err := f.call(name, func() error {
		if file != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(f.srv.Dir(), fileName), b, 0o600); err != nil {
				return err
			}
		}
		var err error
		out, err = f.sh(f.srv.Dir(), script, args...)
		return err
	})
	return out, err
}

func (f *fakeEngine) copyOut(_ context.Context, c ctrInfo, src, dir string) error {
	if c.name != fakeBackup || !strings.HasPrefix(src, backupsDir+"/") {
		return fmt.Errorf("fake copyOut %s:%s", c.name, src)
	}
	b, err := os.ReadFile(filepath.Join(f.backups, filepath.Base(src)))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, filepath.Base(src)), b, 0o600)
}

func (f *fakeEngine) logs(context.Context, ctrInfo, int) string { return f.srv.Log() }

// restore runs redis-ops restore against the fake engine.
func (f *fakeEngine) restore(t *testing.T, args ...string) result {
	t.Helper()
	return cliWith(context.Background(), t, f.srv.Addr(), nil, func(e *env) {
		e.docker = func(_ context.Context, host string) (engine, error) { f.dialed = host; return f, nil }
		e.now = func() time.Time { f.tick++; return time.Date(2026, 3, 1, 10, f.tick, 0, 0, time.UTC) }
	}, append([]string{"restore"}, args...)...)
}

// containers are the flags naming the fake's containers.
var containers = []string{"--redis-container", fakeRedis, "--email-container", fakeEmail, "--backup-container", fakeBackup}

// takeBackup seeds a server, backs it up and returns the backup and the data it holds.
func takeBackup(t *testing.T) (rdb string, data map[string]redistest.Key) {
	t.Helper()
	s := startRedis(t)
	seed(t, opsClient(t, s))
	data = redistest.Snapshot(t, opsClient(t, s))
	dir := t.TempDir()
	if r := cli(t, s.Addr(), nil, "backup", "--dir", dir); r.code != ExitOK {
		t.Fatalf("backup: %v", r)
	}
	m, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*.rdb"))
	if len(m) != 1 {
		t.Fatalf("backup files: %v", m)
	}
	return m[0], data
}

// asideDirs are the before-restore-* dirs in the data dir, oldest first.
func (f *fakeEngine) asideDirs(t *testing.T) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(f.srv.Dir(), asidePrefix+"*"))
	sort.Strings(m)
	return m
}

// keysIn loads the data kept in dir (its appendonlydir, else dump.rdb) into a fresh server and
// returns its keys.
func keysIn(t *testing.T, dir string) map[string]redistest.Key {
	t.Helper()
	data := t.TempDir()
	out, err := exec.Command("cp", "-a", dir+"/.", data).CombinedOutput()
	if err != nil {
		t.Fatalf("copy %s: %v %s", dir, err, out)
	}
	s := redistest.Start(t, redistest.Options{Args: redisArgs(t), Dir: data})
	return redistest.Snapshot(t, opsClient(t, s))
}

// checkRestored: Redis holds the backup's data, the writers run, the marker is gone, and the
// oldest aside dir holds the data from before (the key "pre-restore" only).
func (f *fakeEngine) checkRestored(t *testing.T, want map[string]redistest.Key) {
	t.Helper()
	compareSnapshots(t, want, redistest.Snapshot(t, opsClient(t, f.srv)))
	if !f.running[fakeEmail] || !f.running[fakeBackup] {
		t.Errorf("writers running: %v", f.running)
	}
	for _, name := range []string{restoreMarker, restoreIncoming} {
		if _, err := os.Stat(filepath.Join(f.srv.Dir(), name)); !os.IsNotExist(err) {
			t.Errorf("%s left in the data dir (%v)", name, err)
		}
	}
	aside := f.asideDirs(t)
	if len(aside) == 0 {
		t.Fatalf("no %s* dir in %s", asidePrefix, f.srv.Dir())
	}
	if got := keysIn(t, aside[0]); len(got) != 1 || got["pre-restore"].Value != "kept aside" {
		t.Errorf("%s holds %v, want the key pre-restore only", aside[0], got)
	}
}

// TestRestoreOneCommand: backup, other data in Redis, one command: the steps in order, every key
// with its value and TTL back from the AOF base, the data from before kept aside, AOF on, a write
// after the restore kept across a restart.
func TestRestoreOneCommand(t *testing.T) {
	rdb, want := takeBackup(t)
	f := newFake(t)
	r := f.restore(t, append(containers, rdb)...)
	t.Logf("redis-ops restore:\n%s%s", r.stdout, r.stderr)
	if r.code != ExitOK {
		t.Fatalf("restore: %v", r)
	}
	wantCalls := []string{"inData begin", "stop email", "stop backup", "stop redis", "inData lay-in", "start redis",
		"exec ops", "exec checked", "start backup", "start email", "exec done"}
	if !slices.Equal(f.calls, wantCalls) {
		t.Errorf("calls %v\nwant  %v", f.calls, wantCalls)
	}
	aside := "/data/" + asidePrefix + "20260301T100100Z"
	for _, line := range []string{
		"restore " + filepath.Base(rdb) + " into redis on " + fakeHost,
		"[1/8] verified " + filepath.Base(rdb) + ": 20 keys (7 with a TTL)",
		"[2/8] marker /data/restore-in-progress written; the current data will be kept in " + aside + "/",
		"[3/8] stopped email (stop timeout 60s), backup (stop timeout 60s)",
		"[4/8] stopped redis (stop timeout 36s)",
		"[5/8] kept " + aside + "/appendonlydir, " + aside + "/dump.rdb; backup laid in as /data/appendonlydir/appendonly.aof.1.base.rdb",
		"[6/8] started redis: healthy after",
		"[7/8] key count 20: matches the backup (20 keys, 7 with a TTL)",
		"[8/8] started backup, email; marker removed",
		"Restore done.",
		"  docker -H unix:///fake/docker.sock stop -t 60 email\n  docker -H unix:///fake/docker.sock stop -t 60 backup\n  docker -H unix:///fake/docker.sock stop -t 36 redis\n",
		"  docker -H unix:///fake/docker.sock run --rm --network none --user 999:1000 -v fake-redis-data:/data --entrypoint sh sha256:fake-redis-image -c 'cd /data && mkdir -p after-restore-20260301T100100Z",
		"  docker -H unix:///fake/docker.sock start redis && until [ \"$(docker -H unix:///fake/docker.sock inspect -f '{{.State.Health.Status}}' redis)\" = healthy ]; do sleep 1; done\n" +
			"  docker -H unix:///fake/docker.sock start backup email\n",
		"-c 'rm -rf /data/" + asidePrefix + "20260301T100100Z'",
	} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("output lacks %q", line)
		}
	}
	f.checkRestored(t, want)
	if !strings.Contains(f.srv.Log(), "loaded from base file "+aofBase) {
		t.Errorf("Redis did not load the backup as the AOF base:\n%s", f.srv.Log())
	}
	dir := f.srv.Dir()
	a, errA := os.Stat(filepath.Join(dir, aofDir, aofBase))
	d, errD := os.Stat(filepath.Join(dir, rdbFile))
	if errA != nil || errD != nil || !os.SameFile(a, d) {
		t.Errorf("dump.rdb is not a hard link to the AOF base: %v %v", errA, errD)
	}

	c := opsClient(t, f.srv)
	if inf, _ := fetchInfo(context.Background(), c, "persistence"); inf["aof_enabled"] != "1" {
		t.Errorf("aof_enabled = %q after the restore", inf["aof_enabled"])
	}
	c.Set(context.Background(), "written-after-restore", "x", 0)
	f.srv.Restart(t)
	after := redistest.Snapshot(t, opsClient(t, f.srv))
	if _, ok := after["written-after-restore"]; !ok || len(after) != len(want)+1 {
		t.Errorf("after a restart: %d keys, written-after-restore kept %v", len(after), ok)
	}
}

// TestRestoreResumesAfterAnyFailure fails every call to the engine in turn, before and after doing
// it: the same command run again finishes the restore, and the data from before the restore is
// moved aside once, never the restored data in its place.
func TestRestoreResumesAfterAnyFailure(t *testing.T) {
	rdb, want := takeBackup(t)
	const calls = 11 // of a restore that does not fail (TestRestoreOneCommand)
	for k := 1; k <= calls; k++ {
		for _, after := range []bool{false, true} {
			when := map[bool]string{false: "before", true: "after"}[after]
			t.Run(fmt.Sprintf("%s call %d", when, k), func(t *testing.T) {
				f := newFake(t)
				f.failAt, f.failAfter = k, after
				r := f.restore(t, append(containers, rdb)...)
				if r.code == ExitOK || !strings.Contains(r.stderr, "injected failure") {
					t.Fatalf("the failing run: %v", r)
				}
				failed := f.calls[k-1]
				if k > 1 && !strings.Contains(r.stderr, "re-run the same command") {
					t.Errorf("failure at %s does not say to re-run: %s", failed, r.stderr)
				}
				f.failAt = 0
				r2 := f.restore(t, append(containers, rdb)...)
				if r2.code != ExitOK {
					t.Fatalf("the run after a failure %s %s: %v\nfirst run:\n%v", when, failed, r2, r)
				}
				f.checkRestored(t, want)
				// Removing the marker is the last call: failing after it, the restore was complete,
				// and the second run is a restore of its own (it keeps the restored data aside).
				wantAside := 1
				if k == calls && after {
					wantAside = 2
				}
				if got := f.asideDirs(t); len(got) != wantAside {
					t.Errorf("after a failure %s %s: aside dirs %v, want %d\n%s", when, failed, got, wantAside, r2.stdout)
				}
				if k == 2 && !after && !strings.Contains(r2.stdout, "resuming the unfinished restore") {
					t.Errorf("the second run does not say it resumes:\n%s", r2.stdout)
				}
			})
		}
	}
}

// TestRestoreKeyCountMismatch: a key count outside the manifest's range stops with the writers
// stopped and Redis running, says where the data from before is and how to undo; --force goes on.
func TestRestoreKeyCountMismatch(t *testing.T) {
	rdb, want := takeBackup(t)
	var m manifest
	b, _ := os.ReadFile(manifestPath(rdb))
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m.Keys += 10
	m.RDB.Keys += 10
	if err := writeJSONAtomic(manifestPath(rdb), m); err != nil {
		t.Fatal(err)
	}
	f := newFake(t)
	for i := 0; i < 2; i++ { // and once more: the re-run counts again
		r := f.restore(t, append(containers, rdb)...)
		if r.code != ExitKeyCount || !strings.Contains(r.stderr, "Redis has 20 keys after the restore, the backup 23..30") ||
			!strings.Contains(r.stderr, "/data/"+asidePrefix) || !strings.Contains(r.stdout, "To undo") || !strings.Contains(r.stdout, "Stopped: the writers stay stopped") {
			t.Fatalf("run %d: %v", i+1, r)
		}
		if f.running[fakeEmail] || f.running[fakeBackup] || !f.srv.Running() {
			t.Errorf("run %d: writers %v, Redis running %v: want writers stopped, Redis running", i+1, f.running, f.srv.Running())
		}
	}
	r := f.restore(t, append(append(containers, "--force"), rdb)...)
	if r.code != ExitOK || !strings.Contains(r.stdout, "outside the backup's 23..30, accepted (--force)") {
		t.Fatalf("--force: %v", r)
	}
	f.checkRestored(t, want)
}

// TestRestoreRefusals: what restore refuses, with its exit code, before it stops anything.
func TestRestoreRefusals(t *testing.T) {
	rdb, _ := takeBackup(t)
	f := newFake(t)
	refused := func(name string, r result, code int, want string) {
		t.Helper()
		if r.code != code || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: want exit %d and %q: %v", name, code, want, r)
		}
		for _, c := range f.calls {
			if strings.HasPrefix(c, "stop") || c == "inData lay-in" {
				t.Errorf("%s: %s was called", name, c)
			}
		}
		if !f.srv.Running() || !f.running[fakeEmail] {
			t.Errorf("%s: something was stopped", name)
		}
		f.calls = nil
	}
	bad := corrupt(t, rdb, func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
	refused("corrupt backup", f.restore(t, append(containers, bad)...), ExitVerify, "refusing to restore")
	if f.dialed != "" {
		t.Errorf("the engine was contacted for a backup that fails verification")
	}
	refused("no such Redis container", f.restore(t, "--redis-container", "nope", rdb), ExitNotFound, "no container nope (the Redis container) on the Docker engine "+fakeHost)
	refused("no such email-service", f.restore(t, "--redis-container", fakeRedis, "--email-container", "nope", rdb), ExitNotFound, "--email-container")
	f.redisCmd = []string{"node", redisconf.ConfigFile}
	refused("Sentinel data node", f.restore(t, append(containers, rdb)...), ExitTopology, "Sentinel topology")
	f.redisCmd = []string{redisconf.ConfigFile}
	refused("no FILE", f.restore(t, containers...), ExitUsage, "exactly one FILE")
	refused("no target", f.restore(t, rdb), ExitUsage, "--stack NAME or --redis-container NAME")

	// The real Docker client: no engine at the address, and ssh:// (no transport in the library).
	for _, host := range []string{"unix:///nonexistent/docker.sock", "ssh://deploy@db-1"} {
		r := cli(t, "127.0.0.1:1", nil, "restore", "--redis-container", "redis", "--docker-host", host, rdb)
		if r.code != ExitEngine || !strings.Contains(r.stderr, host) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("--docker-host %s: want exit 11 on one line: %v", host, r)
		}
	}

	// A marker of another backup: refused before anything is stopped; the unfinished one finishes.
	other, _ := takeBackup(t)
	f.failAt, f.failAfter = 4, true // after stopping Redis
	if r := f.restore(t, append(containers, other)...); r.code == ExitOK {
		t.Fatalf("the interrupted restore: %v", r)
	}
	f.failAt, f.calls = 0, nil
	if r := f.restore(t, append(containers, rdb)...); r.code != ExitError || !strings.Contains(r.stderr, "unfinished restore of another backup") ||
		!slices.Equal(f.calls, []string{"inData begin"}) {
		t.Errorf("another backup's marker: %v (calls %v)", r, f.calls)
	}
	if r := f.restore(t, append(containers, other)...); r.code != ExitOK {
		t.Errorf("finishing the unfinished restore: %v", r)
	}
}

// TestRestoreFromStack: --stack takes the containers from the outputs and the engine from the
// stack's docker:host; a stack without a backup container (backups off) is fine; --from-backups
// takes the backup out of the backup container; a Sentinel stack is refused before the engine.
func TestRestoreFromStack(t *testing.T) {
	rdb, want := takeBackup(t)
	f := newFake(t)
	bin := t.TempDir()
	outputs := filepath.Join(bin, "outputs.json")
	script := `#!/bin/sh
case "$*" in
"stack output --json --show-secrets --stack dev") cat "` + outputs + `" ;;
"config get docker:host --stack dev") echo unix:///from/the/stack.sock ;;
*) echo "unexpected: $*" >&2; exit 3 ;;
esac`
	if err := os.WriteFile(filepath.Join(bin, "pulumi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	write := func(v map[string]any) {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(outputs, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write(map[string]any{"redisContainer": fakeRedis, "emailServiceContainer": fakeEmail, "opsPassword": "not-used"})
	r := f.restore(t, "--stack", "dev", rdb)
	if r.code != ExitOK || f.dialed != "unix:///from/the/stack.sock" || !strings.Contains(r.stdout, "[3/8] stopped email (stop timeout 60s)\n") ||
		!strings.Contains(r.stdout, "[8/8] started email; marker removed") {
		t.Fatalf("--stack dev (no backup container redis-backup): %v (engine %q)", r, f.dialed)
	}
	f.checkRestored(t, want)

	// The backup from the backup container's /backups, by name.
	for _, p := range []string{rdb, manifestPath(rdb)} {
		b, _ := os.ReadFile(p)
		if err := os.WriteFile(filepath.Join(f.backups, filepath.Base(p)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r = f.restore(t, "--stack", "dev", "--docker-host", "unix:///flag.sock", "--backup-container", fakeBackup, "--from-backups", filepath.Base(rdb))
	if r.code != ExitOK || f.dialed != "unix:///flag.sock" || !strings.Contains(r.stdout, "[3/8] stopped email (stop timeout 60s), backup (stop timeout 60s)") {
		t.Fatalf("--from-backups: %v (engine %q)", r, f.dialed)
	}
	compareSnapshots(t, want, redistest.Snapshot(t, opsClient(t, f.srv)))
	if r := f.restore(t, "--stack", "dev", "--from-backups", "redis-backup-missing.rdb"); r.code != ExitNotFound || !strings.Contains(r.stderr, "--from-backups needs the backup container") {
		t.Errorf("--from-backups without a backup container: %v", r)
	}
	if r := f.restore(t, "--stack", "dev", "--backup-container", fakeBackup, "--from-backups", "redis-backup-missing.rdb"); r.code != ExitVerify {
		t.Errorf("--from-backups of a missing backup: %v", r)
	}

	f.dialed = ""
	write(map[string]any{"redisContainer": "emailclient-dev-redis-0", "sentinelMasterName": "emailclient"})
	if r := f.restore(t, "--stack", "dev", rdb); r.code != ExitTopology || !strings.Contains(r.stderr, "topology.mode standalone") || f.dialed != "" {
		t.Errorf("Sentinel stack: %v (engine %q)", r, f.dialed)
	}
}

// TestRestoreLayoutMatchesRedisConf: the names restore lays the backup in under are the ones the
// deployed redis.conf makes Redis read.
func TestRestoreLayoutMatchesRedisConf(t *testing.T) {
	got := map[string][]string{}
	for _, d := range redisconf.Defaults().Directives() {
		got[d.Name] = d.Args
	}
	for name, want := range map[string]string{"dir": redisconf.DataDir, "appenddirname": aofDir, "dbfilename": rdbFile} {
		if len(got[name]) != 1 || got[name][0] != want {
			t.Errorf("redis.conf %s %v, restore uses %q", name, got[name], want)
		}
	}
	if _, ok := got["appendfilename"]; ok {
		t.Errorf("redis.conf sets appendfilename %v; restore writes %s", got["appendfilename"], aofBase)
	}
}

// TestLayInScriptSurvivesAKillAtEveryLine stops the lay-in script after each of its lines (as a
// helper container killed there) and runs it again, as the next restore does (the backup copied in
// again first): the old files end up aside once and unchanged, the backup in place.
func TestLayInScriptSurvivesAKillAtEveryLine(t *testing.T) {
	lines := strings.Split(layInScript, "\n")
	for i := 1; i <= len(lines); i++ {
		t.Run(fmt.Sprintf("line %d", i), func(t *testing.T) {
			dir := t.TempDir()
			write := func(name, content string) {
				t.Helper()
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			write(aofDir+"/appendonly.aof.7.base.rdb", "old base")
			write(aofDir+"/"+aofManifest, "old manifest")
			write(rdbFile, "old dump")
			write(restoreMarker, "sha256 x\naside before-restore-1\n")
			run := func(script string) error {
				write(restoreIncoming, "the backup")
				cmd := exec.Command("sh", "-c", script, "sh", "before-restore-1")
				cmd.Dir = dir
				out, err := cmd.CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			}
			killed := strings.Join(slices.Insert(slices.Clone(lines), i, "exit 7"), "\n")
			_ = run(killed)
			if err := run(layInScript); err != nil {
				t.Fatalf("the run after a kill after line %d (%q): %v", i, lines[i-1], err)
			}
			want := map[string]string{
				aofDir + "/" + aofBase:     "the backup",
				aofDir + "/" + aofManifest: "file " + aofBase + " seq 1 type b\n",
				rdbFile:                    "the backup",
				"before-restore-1/" + aofDir + "/appendonly.aof.7.base.rdb": "old base",
				"before-restore-1/" + aofDir + "/" + aofManifest:            "old manifest",
				"before-restore-1/" + rdbFile:                               "old dump",
			}
			var got []string
			_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
				if err == nil && !fi.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					got = append(got, rel)
				}
				return nil
			})
			for name, content := range want {
				if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != content {
					t.Errorf("%s = %q (%v), want %q", name, b, err, content)
				}
			}
			if len(got) != len(want)+1 { // and the marker
				t.Errorf("files after the runs: %v", got)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, restoreMarker)); !strings.HasSuffix(string(b), "laid-in\n") {
				t.Errorf("marker %q", b)
			}
		})
	}
}
