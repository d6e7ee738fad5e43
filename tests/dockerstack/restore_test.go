package dockerstack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/tests/dockertest"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// restoreRun is one run of the redis-ops binary.
type restoreRun struct {
	out    string
	code   int
	killed bool
	took   time.Duration
}

// runOps runs the redis-ops binary; with killAt, it kills it (SIGKILL) as soon as a stdout line
// starts with killAt, as an operator's Ctrl-\ or a lost SSH session would.
func runOps(t *testing.T, bin, killAt string, args ...string) restoreRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	r := restoreRun{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if killAt != "" && !r.killed && strings.HasPrefix(sc.Text(), killAt) {
			_ = cmd.Process.Kill()
			r.killed = true
		}
	}
	err = cmd.Wait()
	r.took = time.Since(start)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	r.out = out.String() + stderr.String()
	noSecrets(t, "redis-ops output", r.out)
	return r
}

// isCeleryKey: the keys the worker changes as soon as it runs (its queue, unacked tasks, results).
func isCeleryKey(k string) bool {
	return k == "celery" || strings.HasPrefix(k, "unacked") || strings.HasPrefix(k, "celery-task-meta-") || strings.Contains(k, "pidbox")
}

// TestRestoreOneCommand (issue 17): the dev stack with the email-service and the backup scheduler;
// keys with TTLs and 30 Celery tasks queued while the worker is stopped; a network backup taken in
// the backup container; FLUSHALL; then one `redis-ops restore` (the backup taken out of the backup
// container, --from-backups): every key with its TTL back, the worker started again runs the 30
// tasks. The printed undo commands put the flushed data back. Then a restore killed after stopping
// Redis, run again and killed after laying the backup in, completes on the third run. Last, the
// documented prod one-liner: the stack's own redis-ops image run with the engine's socket.
func TestRestoreOneCommand(t *testing.T) {
	dockertest.Require(t)
	dockertest.EnsureBaseImages(t, "redis", "busybox", "celery")
	root, err := dockertest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", filepath.Join(root, "deployment/docker/ops/build.sh")).CombinedOutput(); err != nil {
		t.Fatalf("deployment/docker/ops/build.sh: %v\n%s", err, out)
	}
	bin := buildOps(t)

	cfg := localBases()
	cfg["container"] = `{"baseImage":"` + dockertest.RedisBusybox + `","healthcheck":{"interval":"2s","timeout":"1s","retries":3,"startPeriod":"2s"}}`
	cfg["operations"] = `{"build":"prebuilt","backup":{"enabled":true,"schedule":"0 3 1 1 *","volume":"redis-backups"}}`
	res := declare(t, "dev", cfg)
	d, took := apply(t, res, dockertest.ApplyOptions{DependsOn: containerDeps(res)})
	t.Logf("FIGURE restore: apply dev stack (Redis, email-service, backup scheduler) until Redis healthy: %s", took.Round(100*time.Millisecond))
	redisName, emailName, backupName := d.Container(redisCtr), d.Container(emailCtr), d.Container(opsBackup)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", redisName+"-restore-helper").Run() })
	targets := []string{"restore", "--redis-container", redisName, "--email-container", emailName, "--backup-container", backupName}

	ctx := context.Background()
	// A client to the port Redis is published on now (an ephemeral host port: a new one after each start).
	client := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: d.HostPort(t, redisCtr, "6379"), Username: "ops", Password: opsPassword})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	c := client()

	// The worker is stopped: the tasks stay queued, and nothing changes the keys from here on.
	dockerCmd(t, "stop", "-t", "30", emailName)
	const n = 30
	out, err := oneOff(t, d, envFile(t, res), "enqueue", "--count", "30")
	if err != nil {
		t.Fatalf("enqueue: %v: %s", err, out)
	}
	queued := parseReport(t, out)
	if len(queued.TaskIDs) != n {
		t.Fatalf("enqueued %d tasks: %s", len(queued.TaskIDs), out)
	}
	p := c.Pipeline()
	for i := 0; i < 200; i++ {
		ttl := time.Duration(0)
		if i%2 == 0 {
			ttl = time.Duration(1+i) * time.Hour
		}
		p.Set(ctx, fmt.Sprintf("restore:str:%03d", i), strings.Repeat("v", i), ttl)
	}
	p.HSet(ctx, "restore:hash", "a", "1", "b", "2")
	p.Expire(ctx, "restore:hash", 90*time.Minute)
	p.RPush(ctx, "restore:list", "1", "2", "3")
	p.SAdd(ctx, "restore:set", "x", "y")
	p.ZAdd(ctx, "restore:zset", redis.Z{Score: 1.5, Member: "m"})
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	before := redistest.Snapshot(t, c)
	if c.LLen(ctx, "celery").Val() != n {
		t.Fatalf("queue length %d before the backup, want %d", c.LLen(ctx, "celery").Val(), n)
	}

	// The backup, over the network, from the stack's own backup container.
	bout, err := d.Exec(t, opsBackup, "/redis-ops", "backup", "--source", "network", "--dir", "/backups")
	m := regexp.MustCompile(`backup /backups/(redis-backup-\S+\.rdb) .*keys=(\d+)`).FindStringSubmatch(bout)
	if err != nil || m == nil {
		t.Fatalf("backup in the backup container: %v: %s", err, bout)
	}
	backupFile := m[1]
	t.Logf("backup: %s", strings.TrimSpace(bout))

	// Destroy the data.
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, "written-after-flush", "the data from before the restore", 0)

	// One command.
	r := runOps(t, bin, "", append(targets, "--from-backups", backupFile)...)
	t.Logf("redis-ops %s --from-backups %s (exit %d, %s):\n%s", strings.Join(targets, " "), backupFile, r.code, r.took.Round(100*time.Millisecond), r.out)
	if r.code != 0 || !strings.Contains(r.out, "Restore done.") {
		t.Fatalf("restore: exit %d", r.code)
	}
	c = client()
	after := redistest.Snapshot(t, c)
	var missing, wrong []string
	for k, b := range before {
		a, ok := after[k]
		switch {
		case isCeleryKey(k):
		case !ok:
			missing = append(missing, k)
		case a.Value != b.Value || !redistest.SameTTL(a.TTL, b.TTL, 2*time.Minute):
			wrong = append(wrong, k)
		}
	}
	if _, ok := after["written-after-flush"]; ok || len(missing)+len(wrong) > 0 {
		t.Errorf("after the restore: missing %v, wrong value or TTL %v, written-after-flush present %v", missing, wrong, ok)
	}
	withTTL := 0
	for _, b := range before {
		if b.TTL > 0 {
			withTTL++
		}
	}
	done := collectTasks(t, d, queued.TaskIDs)
	t.Logf("FIGURE restore: one command (verify, stop email-service and backup scheduler, stop Redis, lay in, healthy, key count, start) of %d keys (%d with a TTL, all back within 2 min of their TTL) and %d queued tasks: %s; %d of %d tasks ran after it",
		len(before), withTTL, n, r.took.Round(100*time.Millisecond), done, n)
	if done != n {
		t.Errorf("%d of %d queued tasks ran after the restore\n%s", done, n, d.Logs(emailCtr))
	}
	for _, name := range []string{opsBackup, emailCtr} {
		if st, _ := get(d.Inspect(name), "State", "Status").(string); st != "running" {
			t.Errorf("%s is %s after the restore", name, st)
		}
	}

	// The printed undo commands put the data from before the restore back.
	var undo []string
	for _, l := range strings.Split(r.out, "\n") {
		if strings.HasPrefix(l, "  docker -H ") && !strings.Contains(l, "rm -rf") {
			undo = append(undo, strings.TrimSpace(l))
		}
	}
	if len(undo) != 6 {
		t.Fatalf("undo commands: %q", undo)
	}
	start := time.Now()
	if out, err := exec.Command("sh", "-ec", strings.Join(undo, "\n")).CombinedOutput(); err != nil {
		t.Fatalf("undo: %v\n%s", err, out)
	}
	d.WaitHealthy(t, redisCtr, 60*time.Second)
	// A Celery worker stopped within a second of its start ignores SIGTERM until Docker kills it at
	// the stop timeout (measured: 60 s, against 2 s once it runs): the next restore stops a booted one.
	d.WaitHealthy(t, emailCtr, 60*time.Second)
	c = client()
	undone := redistest.Snapshot(t, c)
	if _, ok := undone["written-after-flush"]; !ok || len(undone) > 1+len(before) {
		t.Errorf("after the undo: %d keys, written-after-flush %v", len(undone), ok)
	}
	t.Logf("FIGURE restore undo: the %d printed commands took %s; Redis holds the data from before the restore again (written-after-flush: %v)",
		len(undo), time.Since(start).Round(100*time.Millisecond), undone["written-after-flush"].Value != "")

	// Interrupted: killed after stopping Redis, then after laying the backup in; the third run completes.
	local := filepath.Join(t.TempDir(), backupFile)
	dockerCmd(t, "cp", backupName+":/backups/"+backupFile, local)
	dockerCmd(t, "cp", backupName+":/backups/"+strings.TrimSuffix(backupFile, ".rdb")+".manifest.json", filepath.Dir(local))
	var runs []string
	for i, killAt := range []string{"[4/8] stopped", "[5/8] ", ""} {
		r := runOps(t, bin, killAt, append(targets, local)...)
		t.Logf("run %d (kill at %q): exit %d, killed %v, %s:\n%s", i+1, killAt, r.code, r.killed, r.took.Round(100*time.Millisecond), r.out)
		runs = append(runs, r.took.Round(100*time.Millisecond).String())
		if killAt != "" {
			if !r.killed {
				t.Fatalf("run %d: the line %q never came", i+1, killAt)
			}
			if st, _ := get(d.Inspect(redisCtr), "State", "Status").(string); i == 0 && st == "running" {
				t.Errorf("Redis is running after the kill at %q", killAt)
			}
			continue
		}
		if r.code != 0 || !strings.Contains(r.out, "resuming the unfinished restore of this backup") || !strings.Contains(r.out, "backup already laid in by an earlier run") {
			t.Fatalf("the run after two kills: exit %d", r.code)
		}
	}
	c = client()
	final := redistest.Snapshot(t, c)
	for k, b := range before {
		if a, ok := final[k]; !isCeleryKey(k) && (!ok || a.Value != b.Value) {
			t.Errorf("after the interrupted restore: key %s missing or changed", k)
		}
	}
	ls := listData(t, d, redisName)
	var aside []string
	for _, e := range ls {
		if strings.HasPrefix(e, "before-restore-") {
			aside = append(aside, e)
		}
	}
	if len(aside) != 1 || slices.Contains(ls, "restore-in-progress") || slices.Contains(ls, "restore-incoming.rdb") {
		t.Errorf("/data after the interrupted restore: %v (want one before-restore-*, no marker, no incoming copy)", ls)
	}
	if out, _ := exec.Command("docker", "ps", "-aq", "--filter", "name="+redisName+"-restore-helper").Output(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("a helper container is left: %s", out)
	}
	done = collectTasks(t, d, queued.TaskIDs)
	t.Logf("FIGURE restore interrupted: killed after stopping Redis, killed after laying the backup in, third run completed (runs %s); /data: %v; %d of %d tasks ran again",
		strings.Join(runs, ", "), ls, done, n)

	// The prod one-liner on the Docker host: the stack's own redis-ops image, given the engine's socket.
	c = client()
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat("/var/run/docker.sock")
	if err != nil {
		t.Skipf("the one-liner needs the engine's socket here: %v", err)
	}
	gid := fmt.Sprint(st.Sys().(*syscall.Stat_t).Gid)
	oneLiner := []string{"run", "--rm", "--tmpfs", "/tmp", "--group-add", gid, "-v", "/var/run/docker.sock:/var/run/docker.sock",
		d.Image(opsImageRes), "restore", "--redis-container", redisName, "--email-container", emailName, "--backup-container", backupName,
		"--from-backups", backupFile}
	start = time.Now()
	out1, err := exec.Command("docker", oneLiner...).CombinedOutput()
	noSecrets(t, "one-liner output", string(out1))
	t.Logf("docker %s:\n%s", strings.Join(oneLiner, " "), out1)
	if err != nil || !strings.Contains(string(out1), "Restore done.") {
		t.Fatalf("the one-liner: %v", err)
	}
	c = client()
	got := redistest.Snapshot(t, c)
	for k, b := range before {
		if a, ok := got[k]; !isCeleryKey(k) && (!ok || a.Value != b.Value) {
			t.Errorf("after the one-liner: key %s missing or changed", k)
		}
	}
	t.Logf("FIGURE restore with the stack's redis-ops image (docker run on the engine's host, --from-backups): %s, %d keys", time.Since(start).Round(100*time.Millisecond), len(got))
}

// collectTasks waits for the tasks' results in the email-service container; it returns how many completed.
func collectTasks(t *testing.T, d *dockertest.Deployment, ids []string) int {
	t.Helper()
	out, err := d.Exec(t, emailCtr, append([]string{"python3", "-m", "emailworker.client", "collect", "--timeout", "120"}, ids...)...)
	noSecrets(t, "collect output", out)
	if err != nil {
		t.Errorf("collect: %v: %s", err, out)
		return 0
	}
	return parseReport(t, out).Completed
}

// listData lists /data of the Redis container (through a container of its image: it may be stopped).
func listData(t *testing.T, d *dockertest.Deployment, redisName string) []string {
	t.Helper()
	out := dockerCmd(t, "run", "--rm", "--label", dockertest.LabelKey+"="+d.Suffix(), "--volumes-from", redisName, "--entrypoint", "ls",
		dockertest.RedisBase, "-A", "/data")
	l := strings.Fields(out)
	sort.Strings(l)
	return l
}

// buildOps compiles redis-ops for this host (statically: it also runs in a container of the base image).
func buildOps(t *testing.T) string {
	t.Helper()
	root, err := dockertest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "redis-ops")
	build := exec.Command("go", "build", "-o", bin, "./deployment/cmd/redis-ops")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build redis-ops: %v\n%s", err, out)
	}
	return bin
}

// TestRestoreProdHostPath: the prod stack's Redis (no port on the host, data in a host directory,
// container.dataHostPath), no email-service or backup container: a backup taken on the broker's
// network, FLUSHALL, restore by container name: the keys are back through the bind mount, the
// undo commands name the host directory and put the flushed data back.
func TestRestoreProdHostPath(t *testing.T) {
	dockertest.Require(t)
	dockertest.EnsureBaseImages(t, "redis")
	bin := buildOps(t)
	const declaredHostPath = "/srv/emailclient/redis-restore-dockerstack"
	res := declare(t, "prod", map[string]string{
		"container":    `{"baseImage":"` + dockertest.RedisBase + `","dataHostPath":"` + declaredHostPath + `"}`,
		"emailService": `{"enabled":false}`,
		"operations":   `{"backup":{"enabled":false},"metrics":{"enabled":false}}`,
	})
	user, _ := containerInputs(t, res, redisCtr)["user"].(string)
	dataDir := filepath.Join(t.TempDir(), "redis")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	uid, gid, _ := strings.Cut(user, ":")
	u, _ := strconv.Atoi(uid)
	g, _ := strconv.Atoi(gid)
	if err := os.Chown(dataDir, u, g); err != nil {
		t.Skipf("the host directory must belong to %s (run as root): %v", user, err)
	}
	d, _ := apply(t, res, dockertest.ApplyOptions{HostPaths: map[string]string{declaredHostPath: dataDir}})
	redisName := d.Container(redisCtr)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", redisName+"-restore-helper").Run() })
	cli := func(args ...string) string {
		t.Helper()
		out, err := redisCLI(t, d, args...)
		if err != nil {
			t.Fatalf("redis-cli %v: %v", args, err)
		}
		return strings.TrimSpace(out)
	}
	cli("eval", "for i = 1, 500 do redis.call('set', 'prod:'..i, i); if i % 2 == 0 then redis.call('expire', 'prod:'..i, 3600) end end", "0")
	cli("set", "prod:ttl", "v", "ex", "3600")
	before := cli("dbsize")
	if before != "501" {
		t.Fatalf("seeded %s keys, want 501", before)
	}

	// The backup over the broker's network (prod publishes no port), by the binary in a throwaway
	// container with the run volume's ops.password.
	backups := t.TempDir()
	if err := os.Chmod(backups, 0o777); err != nil {
		t.Fatal(err)
	}
	out := dockerCmd(t, "run", "--rm", "--label", dockertest.LabelKey+"="+d.Suffix(), "--network", d.Network("broker-network"), "--user", user,
		"-v", bin+":/redis-ops:ro", "-v", d.Volume(runVolume)+":/run/redis:ro", "-v", backups+":/b",
		"-e", "REDIS_ADDR=redis:6379", "-e", "REDIS_PASSWORD_FILE=/run/redis/ops.password", "--entrypoint", "/redis-ops",
		dockertest.RedisBase, "backup", "--source", "network", "--dir", "/b")
	m, _ := filepath.Glob(filepath.Join(backups, "redis-backup-*.rdb"))
	if len(m) != 1 {
		t.Fatalf("backup: %s", out)
	}
	cli("flushall")

	r := runOps(t, bin, "", "restore", "--redis-container", redisName, m[0])
	t.Logf("redis-ops restore --redis-container %s %s (exit %d):\n%s", redisName, filepath.Base(m[0]), r.code, r.out)
	if r.code != 0 {
		t.Fatalf("restore: exit %d", r.code)
	}
	if got := cli("dbsize"); got != before || cli("ttl", "prod:ttl") == "-1" {
		t.Errorf("after the restore: dbsize %s (want %s), ttl of prod:ttl %s", got, before, cli("ttl", "prod:ttl"))
	}
	var undo []string
	for _, l := range strings.Split(r.out, "\n") {
		if strings.HasPrefix(l, "  docker -H ") && !strings.Contains(l, "rm -rf") {
			undo = append(undo, strings.TrimSpace(l))
		}
	}
	if len(undo) != 3 || !strings.Contains(undo[1], "-v "+dataDir+":/data ") {
		t.Fatalf("undo commands (want the stop, the move on %s, the start): %q", dataDir, undo)
	}
	if out, err := exec.Command("sh", "-ec", strings.Join(undo, "\n")).CombinedOutput(); err != nil {
		t.Fatalf("undo: %v\n%s", err, out)
	}
	entries, _ := os.ReadDir(dataDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := cli("dbsize"); got != "0" || !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "after-restore-") }) {
		t.Errorf("after the undo: dbsize %s (want 0, the flushed data), %s holds %v", got, dataDir, names)
	}
	t.Logf("FIGURE restore on a host path (prod): %s keys back in %s; the undo put the flushed data back (%s: %v)",
		before, r.took.Round(100*time.Millisecond), dataDir, names)
}
