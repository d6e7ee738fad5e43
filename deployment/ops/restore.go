package ops

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/deployment/dockerexec"
)

const restoreHelp = `
Restores a verified backup into a deployed standalone broker in one command,
through the Docker engine the stack runs on (the Docker API, no docker CLI):

  1. verify FILE against its manifest (size, MD5, SHA256, RDB format)
  2. write the marker /data/restore-in-progress (the backup's SHA256 and
     where the current data goes)
  3. stop the writers: the email-service and the backup scheduler, each with
     its own stop timeout
  4. stop Redis with its stop timeout (its final AOF write and save)
  5. keep the current data aside: /data/appendonlydir and /data/dump.rdb move
     into /data/before-restore-<UTC time>/ (nothing is deleted); lay the
     backup in as the AOF base (appendonlydir/appendonly.aof.1.base.rdb and a
     one-line manifest; dump.rdb is a hard link to it)
  6. start Redis and wait until its healthcheck says healthy (--wait)
  7. compare the key count with the manifest: keys with a TTL may have
     expired since the backup; any other difference stops here with the
     writers stopped (--force accepts it)
  8. start the writers, remove the marker, print how to undo

The files in /data are moved by a short-lived helper container from the
Redis container's own image, as its user, with its /data mount and no
network. The key count runs redis-cli inside the Redis container with the ops
password read there from /run/redis/ops.password.

Safe to re-run: after a failure at any step, the same command continues from
the marker (data already kept aside is not moved again).

Targets: --stack NAME reads the outputs redisContainer, emailServiceContainer
and sentinelMasterName (pulumi stack output) and the engine (pulumi config get
docker:host); the backup container is <redisContainer>-backup when it exists.
The container flags override them (an empty value: none). Engine:
--docker-host, else the stack's docker:host, else DOCKER_HOST, else the
default socket.

--remote: FILE (a backup name, or latest) is downloaded with its manifest
from the remote copy (the --remote-* flags, else the stack's backupRemote
outputs) into a temp dir and verified there first: a new host with an empty
disk restores with make up, then restore --stack NAME --remote latest.

Refused before anything is stopped: a backup failing verification (exit 9),
a Sentinel topology (10), no engine (11), a container not found (12). A key
count outside the manifest's range exits 13.`

// restoreOptions configures runRestore.
type restoreOptions struct {
	stack      string // read containers and engine from this stack
	dockerHost string // the engine; overrides the stack's docker:host
	// redis, email and backup are the containers; each overrides the stack's (email and backup may
	// be "": none).
	redis, email, backup string
	fromBackups          bool          // FILE is a backup in the backup container's /backups
	force                bool          // accept a key count outside the manifest's range
	wait                 time.Duration // how long Redis may take to become healthy
	set                  map[string]bool
}

// Names in the data dir. aofDir and aofBase are what the deployed redis.conf uses
// (components/redisconf: appenddirname appendonlydir, the default appendfilename appendonly.aof;
// TestRestoreLayoutMatchesRedisConf checks them).
const (
	aofDir          = "appendonlydir"
	aofBase         = "appendonly.aof.1.base.rdb"
	aofManifest     = "appendonly.aof.manifest"
	rdbFile         = "dump.rdb"
	restoreMarker   = "restore-in-progress"
	restoreIncoming = "restore-incoming.rdb"
	asidePrefix     = "before-restore-"
	// backupsDir is where the backup container mounts the backups (components.BackupsDir).
	backupsDir = "/backups"
	// restoreSteps is the number of steps printed.
	restoreSteps = 8
)

// beginScript ($1 sha256, $2 aside dir) writes the marker unless there is one, and prints it
// ("new" first when it wrote it). It runs while Redis may still be running: it touches no data.
const beginScript = `set -eu
m=` + restoreMarker + `
if [ ! -e "$m" ]; then
	printf 'sha256 %s\naside %s\n' "$1" "$2" >"$m.tmp"
	mv "$m.tmp" "$m"
	echo new
fi
cat "$m"`

// layInScript ($1 aside dir) runs with Redis stopped and the backup copied in as restoreIncoming;
// it does nothing once the marker says laid-in. Killed after any line, it can run again
// (TestLayInScriptSurvivesAKillAtEveryLine): the current files move into the aside dir (under a new
// name if that one is taken, so nothing is overwritten), unless the AOF dir is exactly what this
// script lays in (this backup as the base and the one-line manifest: an earlier run got that far,
// and no Redis has started on it since, which would have added its incr file); the new AOF dir is
// built under a temporary name and renamed into place. dump.rdb becomes a hard link to the base, so
// a server started with appendonly no loads the same data; Redis replaces its files by rename, so a
// later save or AOF rewrite never changes the other name's content.
const layInScript = `set -eu
m=` + restoreMarker + ` in=` + restoreIncoming + ` dir=` + aofDir + ` base=` + aofBase + ` aside=$1
line="file $base seq 1 type b"
if grep -qx laid-in "$m"; then
	rm -f "$in"
	exit 0
fi
if [ -f "$dir/$base" ] && cmp -s "$dir/$base" "$in" && [ "$(cat "$dir/` + aofManifest + `" 2>/dev/null)" = "$line" ]; then
	echo "in place"
else
	mkdir -p "$aside"
	for f in "$dir" ` + rdbFile + `; do
		if [ -e "$f" ] || [ -L "$f" ]; then
			to=$aside/$f n=1
			while [ -e "$to" ]; do to=$aside/$f.$n; n=$((n + 1)); done
			mv "$f" "$to"
			echo "kept $to"
		fi
	done
	rm -rf restore-new
	mkdir restore-new
	mv "$in" "restore-new/$base"
	printf '%s\n' "$line" >restore-new/` + aofManifest + `
	mv restore-new "$dir"
fi
[ -e ` + rdbFile + ` ] || ln "$dir/$base" ` + rdbFile + `
rm -f "$in"
sync
printf 'laid-in\n' >>"$m"
sync`

// markScript ($1 data dir, $2 a phase or "done") records a phase in the marker, or removes it.
const markScript = `set -eu
if [ "$2" = done ]; then rm -f "$1/` + restoreMarker + `"; else printf '%s\n' "$2" >>"$1/` + restoreMarker + `"; fi`

// keyspaceScript ($1 run dir, $2 user) prints INFO keyspace, as the healthcheck does: the password
// is read from the file inside the container, never put on a command line.
const keyspaceScript = `port=$(sed -n 's/^port \([0-9][0-9]*\)$/\1/p' "$1/redis.conf")
REDISCLI_AUTH=$(cat "$1/ops.password") || exit 1
export REDISCLI_AUTH
exec redis-cli --no-auth-warning --user "$2" -p "${port:-6379}" info keyspace`

// marker is the content of /data/restore-in-progress.
type marker struct {
	isNew   bool   // written by this run
	sha256  string // the backup being restored
	aside   string // where the data from before goes (relative to /data)
	laidIn  bool   // the backup is in place
	checked bool   // the key count was accepted
}

func parseMarker(out string) (marker, error) {
	var m marker
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		switch k {
		case "new":
			m.isNew = true
		case "sha256":
			m.sha256 = v
		case "aside":
			m.aside = v
		case "laid-in":
			m.laidIn = true
		case "checked":
			m.checked = true
		}
	}
	if m.sha256 == "" || !strings.HasPrefix(m.aside, asidePrefix) || strings.Contains(m.aside, "/") {
		return m, fmt.Errorf("unreadable %s/%s: %q", redisconf.DataDir, restoreMarker, strings.TrimSpace(out))
	}
	return m, nil
}

// restoreTargets are the engine and the containers a restore acts on.
type restoreTargets struct {
	host          string
	redis         string
	email, backup string // "" = none
	// backupOptional: the backup container's name is derived (<redis>-backup), and absent when the
	// stack has backups off.
	backupOptional bool
}

func runRestore(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("restore", "(--stack NAME | --redis-container NAME) [flags] FILE", restoreHelp)
	o := restoreOptions{}
	fs.StringVar(&o.stack, "stack", "", "take the containers and the engine from this Pulumi stack (needs the pulumi CLI)")
	fs.StringVar(&o.dockerHost, "docker-host", "", "Docker engine, e.g. unix:///var/run/docker.sock or tcp://db-1:2376 (default: the stack's docker:host, else DOCKER_HOST)")
	fs.StringVar(&o.redis, "redis-container", "", "the Redis container (default: the stack's redisContainer)")
	fs.StringVar(&o.email, "email-container", "", `the email-service container to stop and start again (default: the stack's emailServiceContainer; "" none)`)
	fs.StringVar(&o.backup, "backup-container", "", `the backup scheduler container to stop and start again (default: <redis container>-backup when it exists; "" none)`)
	fs.BoolVar(&o.fromBackups, "from-backups", false, "FILE is the name of a backup in /backups of the backup container (copied out of it)")
	fs.BoolVar(&o.force, "force", false, "continue when the restored key count is outside the manifest's range")
	rf := e.addRemoteFlags(fs, true)
	fs.DurationVar(&o.wait, "wait", 10*time.Minute, "maximum time for Redis to load the backup and become healthy")
	if err := parse(fs, args); err != nil {
		return err
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if fs.NArg() != 1 {
		fs.Usage()
		return withCode(ExitUsage, errors.New("restore takes exactly one FILE"))
	}
	if o.stack == "" && o.redis == "" {
		return withCode(ExitUsage, errors.New("restore needs --stack NAME or --redis-container NAME"))
	}
	t, err := o.targets(ctx)
	if err != nil {
		return err
	}
	file := fs.Arg(0)
	var b restoreBackup
	if rf.use { // downloaded and verified before the engine is contacted
		cleanup, err := downloadForRestore(ctx, e, rf, o, file, &b)
		defer cleanup()
		if err != nil {
			return err
		}
	} else if !o.fromBackups {
		// A bad backup is refused before the engine is even contacted.
		if b, err = verifiedBackup(ctx, rdbPathOf(file)); err != nil {
			return err
		}
	}
	dial := e.docker
	if dial == nil {
		dial = dialDocker
	}
	eng, err := dial(ctx, t.host)
	if err != nil {
		return err
	}
	defer eng.close()
	r := &restorer{e: e, eng: eng, o: o}
	if err := r.inspect(ctx, t); err != nil {
		return err
	}
	if o.fromBackups {
		dir, err := os.MkdirTemp("", "redis-ops-restore-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if b, err = r.fetchBackup(ctx, file, dir); err != nil {
			return err
		}
	}
	return r.run(ctx, b)
}

// targets resolves the engine and the container names from the stack and the flags.
func (o restoreOptions) targets(ctx context.Context) (restoreTargets, error) {
	t := restoreTargets{host: o.dockerHost, redis: o.redis, email: o.email, backup: o.backup}
	if o.stack == "" {
		return t, nil
	}
	so, err := readStackOutputs(ctx, o.stack)
	if err != nil {
		return t, err
	}
	if so.SentinelMasterName != "" {
		return t, sentinelRefusal(fmt.Sprintf("stack %s runs the Sentinel topology (master %s)", o.stack, so.SentinelMasterName))
	}
	if !o.set["redis-container"] {
		if t.redis = so.RedisContainer; t.redis == "" {
			return t, fmt.Errorf("stack %s has no redisContainer output (deployed? make up STACK=%s)", o.stack, o.stack)
		}
	}
	if !o.set["email-container"] {
		t.email = so.EmailServiceContainer
	}
	if !o.set["backup-container"] {
		t.backup, t.backupOptional = t.redis+"-backup", true
	}
	if !o.set["docker-host"] {
		out, err := pulumiCLI(ctx, o.stack, "config get docker:host", "config", "get", "docker:host")
		if err != nil && !strings.Contains(err.Error(), "not found") {
			return t, err
		}
		t.host = strings.TrimSpace(string(out))
	}
	return t, nil
}

// sentinelRefusal says why a Sentinel topology (what: which one) is refused, and what to do instead.
func sentinelRefusal(what string) error {
	return withCode(ExitTopology, fmt.Errorf("%s: restore handles a standalone broker only. "+
		"Switch the stack to standalone (pulumi config set --path topology.mode standalone; make up: node 0's data volume becomes the broker's), "+
		"restore there, then switch back (the replicas resync from the restored primary); see docs/OPERATIONS.md", what))
}

// restoreBackup is a verified backup file on this host.
type restoreBackup struct {
	path string
	m    manifest
}

// verifiedBackup runs verify on rdb; failures carry ExitVerify.
func verifiedBackup(ctx context.Context, rdb string) (restoreBackup, error) {
	m, err := verifyBackup(ctx, rdb)
	if err != nil {
		return restoreBackup{}, withCode(ExitVerify, fmt.Errorf("refusing to restore %s: %w", rdb, err))
	}
	return restoreBackup{path: rdb, m: m}, nil
}

// restorer runs the steps of one restore.
type restorer struct {
	e   *env
	eng engine
	o   restoreOptions
	// redis is the Redis container; writers are the containers stopped while the data changes,
	// in stop order.
	redis   ctrInfo
	writers []ctrInfo
	backup  *ctrInfo // the backup scheduler (also in writers), nil when there is none
	step    int
	mk      marker
}

// inspect finds the containers; a missing one is ExitNotFound, a Sentinel data node ExitTopology.
func (r *restorer) inspect(ctx context.Context, t restoreTargets) error {
	find := func(name, flag, what string, optional bool) (*ctrInfo, error) {
		c, err := r.eng.inspect(ctx, name)
		switch {
		case client.IsErrNotFound(err) && optional:
			return nil, nil
		case client.IsErrNotFound(err):
			return nil, withCode(ExitNotFound, fmt.Errorf("no container %s (the %s) on the Docker engine %s: is the stack deployed there? (or pass --%s)",
				name, what, r.eng.host(), flag))
		case err != nil:
			return nil, fmt.Errorf("inspect %s: %w", name, err)
		}
		return &c, nil
	}
	redis, err := find(t.redis, "redis-container", "Redis container", false)
	if err != nil {
		return err
	}
	r.redis = *redis
	if len(r.redis.cmd) > 0 && (r.redis.cmd[0] == "node" || r.redis.cmd[0] == "sentinel") {
		return sentinelRefusal(fmt.Sprintf("container %s is a node of a Sentinel topology (command %q)", t.redis, r.redis.cmd[0]))
	}
	if r.redis.data.Type == "" {
		return fmt.Errorf("container %s has no mount at %s: not the broker of a stack of this project", t.redis, redisconf.DataDir)
	}
	if t.email != "" {
		c, err := find(t.email, "email-container", "email-service", false)
		if err != nil {
			return err
		}
		r.writers = append(r.writers, *c)
	}
	if t.backup != "" {
		if r.backup, err = find(t.backup, "backup-container", "backup scheduler", t.backupOptional); err != nil {
			return err
		}
		if r.backup != nil {
			r.writers = append(r.writers, *r.backup)
		}
	}
	return nil
}

// fetchBackup copies a backup and its manifest out of the backup container's /backups into dir
// and verifies the copy.
func (r *restorer) fetchBackup(ctx context.Context, name, dir string) (restoreBackup, error) {
	if r.backup == nil {
		return restoreBackup{}, withCode(ExitNotFound, errors.New("--from-backups needs the backup container (operations.backup.enabled, or --backup-container NAME)"))
	}
	rdb := path.Join(backupsDir, path.Base(rdbPathOf(name)))
	for _, src := range []string{rdb, manifestPath(rdb)} {
		if err := r.eng.copyOut(ctx, *r.backup, src, dir); err != nil {
			return restoreBackup{}, withCode(ExitVerify, fmt.Errorf("refusing to restore %s: %w (the backups: docker exec %s /redis-ops list --dir %s)", name, err, r.backup.name, backupsDir))
		}
	}
	return verifiedBackup(ctx, filepath.Join(dir, path.Base(rdb)))
}

// printf prints one step line: "[n/8] ...".
func (r *restorer) printf(format string, args ...any) {
	r.step++
	fmt.Fprintf(r.e.stdout, "[%d/%d] %s\n", r.step, restoreSteps, fmt.Sprintf(format, args...))
}

// failed wraps an error of a step that ran after the marker was written: the same command
// continues from there. Once the backup is laid in, the undo commands are printed too. The exit
// code is the error's own, else ExitError (an engine error is not a Redis one).
func (r *restorer) failed(what string, err error) error {
	if r.mk.laidIn {
		fmt.Fprint(r.e.stdout, r.undo())
	}
	code := ExitError
	if ce := (*codedError)(nil); errors.As(err, &ce) {
		code = ce.code
	}
	return withCode(code, fmt.Errorf("step %d/%d (%s): %w\nNothing is lost: re-run the same command to continue from there (state in %s/%s); the data from before the restore is in %s/%s/",
		r.step+1, restoreSteps, what, err, redisconf.DataDir, restoreMarker, redisconf.DataDir, r.mk.aside))
}

func (r *restorer) run(ctx context.Context, b restoreBackup) error {
	e, m := r.e, b.m
	fmt.Fprintf(e.stdout, "restore %s into %s on %s\n", filepath.Base(b.path), r.redis.name, r.eng.host())
	lo, hi := keyRange(m)
	r.printf("verified %s: %d keys (%d with a TTL), %s, sha256 %s, created %s", filepath.Base(b.path), hi, m.Expires,
		humanBytes(m.Size), m.SHA256, m.CreatedAt.Format(time.RFC3339))

	aside := asidePrefix + e.now().UTC().Format("20060102T150405Z")
	out, err := r.eng.inData(ctx, r.redis, "", "", beginScript, m.SHA256, aside)
	if err != nil {
		return fmt.Errorf("write the marker %s/%s: %w", redisconf.DataDir, restoreMarker, err)
	}
	if r.mk, err = parseMarker(out); err != nil {
		return err
	}
	if r.mk.sha256 != m.SHA256 {
		return fmt.Errorf("%s/%s holds an unfinished restore of another backup (sha256 %s; the data from before it is in %s/%s/): "+
			"finish it by running restore with that backup again, or undo it (see the undo commands it printed) and delete the marker",
			redisconf.DataDir, restoreMarker, r.mk.sha256, redisconf.DataDir, r.mk.aside)
	}
	if r.mk.isNew {
		r.printf("marker %s/%s written; the current data will be kept in %s/%s/", redisconf.DataDir, restoreMarker, redisconf.DataDir, r.mk.aside)
	} else {
		yes := map[bool]string{true: "yes", false: "no"}
		r.printf("resuming the unfinished restore of this backup (marker %s/%s: data from before in %s/%s/, backup laid in: %s, key count accepted: %s)",
			redisconf.DataDir, restoreMarker, redisconf.DataDir, r.mk.aside, yes[r.mk.laidIn], yes[r.mk.checked])
	}

	if r.mk.checked {
		r.printf("writers: nothing to stop (the key count was accepted by an earlier run)")
	} else if err := r.stopAll(ctx, r.writers, "writers"); err != nil {
		return r.failed("stop the writers", err)
	}
	if r.mk.laidIn {
		r.printf("Redis: not stopped (the backup was laid in by an earlier run)")
	} else if err := r.stopAll(ctx, []ctrInfo{r.redis}, "Redis"); err != nil {
		return r.failed("stop Redis", err)
	}

	if r.mk.laidIn {
		r.printf("backup already laid in by an earlier run; data from before in %s/%s/", redisconf.DataDir, r.mk.aside)
	} else {
		out, err := r.eng.inData(ctx, r.redis, b.path, restoreIncoming, layInScript, r.mk.aside)
		if err != nil {
			return r.failed("lay the backup in", err)
		}
		r.mk.laidIn = true
		var kept []string
		for _, l := range strings.Split(out, "\n") {
			if k, ok := strings.CutPrefix(strings.TrimSpace(l), "kept "); ok {
				kept = append(kept, redisconf.DataDir+"/"+k)
			}
		}
		keptText := "nothing to keep aside (no " + aofDir + " or " + rdbFile + ")"
		if len(kept) > 0 {
			keptText = "kept " + strings.Join(kept, ", ")
		} else if strings.Contains(out, "in place") {
			keptText = "kept aside by an earlier run"
		}
		r.printf("%s; backup laid in as %s/%s/%s (%s: a hard link to it)", keptText, redisconf.DataDir, aofDir, aofBase, rdbFile)
	}

	start := time.Now()
	if err := r.eng.start(ctx, r.redis); err != nil {
		return r.failed("start Redis", err)
	}
	if err := r.waitHealthy(ctx); err != nil {
		return r.failed("start Redis", err)
	}
	r.printf("started %s: healthy after %s", r.redis.name, time.Since(start).Round(100*time.Millisecond))

	if r.mk.checked {
		r.printf("key count: accepted by an earlier run")
	} else {
		got, err := r.keys(ctx)
		if err != nil {
			return r.failed("count the keys", err)
		}
		switch {
		case got >= lo && got <= hi:
			r.printf("key count %d: matches the backup (%d keys, %d with a TTL)", got, hi, m.Expires)
		case r.o.force:
			r.printf("key count %d: outside the backup's %s, accepted (--force)", got, keyRangeText(lo, hi))
		default:
			r.step++
			fmt.Fprintf(e.stdout, "Stopped: the writers stay stopped, %s runs with the restored data.\n%s", r.redis.name, r.undo())
			return withCode(ExitKeyCount, fmt.Errorf("step %d/%d: Redis has %d keys after the restore, the backup %s (%d keys, %d with a TTL that may have expired): "+
				"inspect it (redis-ops analyze), then re-run with --force to accept, or undo (above); the data from before the restore is in %s/%s/",
				r.step, restoreSteps, got, keyRangeText(lo, hi), hi, m.Expires, redisconf.DataDir, r.mk.aside))
		}
		if _, err := r.eng.exec(ctx, r.redis, "sh", "-c", markScript, "sh", redisconf.DataDir, "checked"); err != nil {
			return r.failed("record the key count", err)
		}
	}

	var started []string
	for i := len(r.writers) - 1; i >= 0; i-- {
		if err := r.eng.start(ctx, r.writers[i]); err != nil {
			return r.failed("start the writers", err)
		}
		started = append(started, r.writers[i].name)
	}
	if _, err := r.eng.exec(ctx, r.redis, "sh", "-c", markScript, "sh", redisconf.DataDir, "done"); err != nil {
		return r.failed("remove the marker", err)
	}
	if len(started) == 0 {
		started = []string{"no writers"}
	}
	r.printf("started %s; marker removed", strings.Join(started, ", "))
	fmt.Fprintf(e.stdout, "Restore done.\n%s", r.undo())
	return nil
}

// stopAll stops cs in order, each with its own stop timeout, and prints one step line.
func (r *restorer) stopAll(ctx context.Context, cs []ctrInfo, what string) error {
	var done []string
	for _, c := range cs {
		if err := r.eng.stop(ctx, c); err != nil {
			return err
		}
		done = append(done, fmt.Sprintf("%s (stop timeout %s)", c.name, c.stopTimeoutText()))
	}
	if len(done) == 0 {
		r.printf("%s: none to stop", what)
		return nil
	}
	r.printf("stopped %s", strings.Join(done, ", "))
	return nil
}

// waitHealthy waits until the Redis container is healthy (running, without a healthcheck), at
// most o.wait; it fails at once when the container exits.
func (r *restorer) waitHealthy(ctx context.Context) error {
	deadline := time.Now().Add(r.o.wait)
	for {
		c, err := r.eng.inspect(ctx, r.redis.id)
		switch {
		case err != nil:
			return err
		case c.health == "healthy" || c.running && c.health == "":
			return nil
		case !c.running:
			return fmt.Errorf("%s exited with code %d while loading the backup; its log:\n%s", r.redis.name, c.exitCode, r.eng.logs(ctx, c, 15))
		case time.Now().After(deadline):
			return fmt.Errorf("%s not healthy after %v (health %s: %s)", r.redis.name, r.o.wait, c.health, c.healthLog)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// keys counts the keys with redis-cli inside the Redis container (INFO keyspace).
func (r *restorer) keys(ctx context.Context) (int64, error) {
	out, err := r.eng.exec(ctx, r.redis, "sh", "-c", keyspaceScript, "sh", redisconf.RunDir, redisconf.OpsUser)
	if err != nil {
		return 0, err
	}
	if !strings.Contains(out, "# Keyspace") {
		return 0, fmt.Errorf("INFO keyspace in %s answered %q", r.redis.name, dockerexec.FirstLines(out, 1))
	}
	return parseInfo(out).totalKeys(), nil
}

// keyRange is the key count a restore of m may show: the backup's keys (those redis-check-rdb read,
// else INFO's at backup time), less at most the keys that had a TTL, which may have expired since.
func keyRange(m manifest) (lo, hi int64) {
	hi = m.Keys
	if m.RDB.Keys > 0 {
		hi = m.RDB.Keys
	}
	return max(hi-m.Expires, 0), hi
}

// keyRangeText is "n" or "lo..hi".
func keyRangeText(lo, hi int64) string {
	if lo == hi {
		return fmt.Sprint(hi)
	}
	return fmt.Sprintf("%d..%d", lo, hi)
}

// undo returns the commands that put the data from before the restore back: the restored data moves
// into /data/after-restore-<time>/, the kept files back into /data.
func (r *restorer) undo() string {
	docker := "docker -H " + shellQuote(r.eng.host())
	after := "after-restore-" + strings.TrimPrefix(r.mk.aside, asidePrefix)
	var b strings.Builder
	fmt.Fprintf(&b, "To undo (the data from before the restore back in %s; the restored data moves to %s/%s/):\n", redisconf.DataDir, redisconf.DataDir, after)
	for _, c := range append(append([]ctrInfo(nil), r.writers...), r.redis) {
		fmt.Fprintf(&b, "  %s stop -t %s %s\n", docker, strings.TrimSuffix(c.stopTimeoutText(), "s"), c.name)
	}
	script := fmt.Sprintf(`cd %s && mkdir -p %s && for f in %s %s; do if [ -e "$f" ]; then mv "$f" %s/; fi; done && for f in %s/*; do if [ -e "$f" ]; then mv "$f" .; fi; done && rmdir %s`,
		redisconf.DataDir, after, aofDir, rdbFile, after, r.mk.aside, r.mk.aside)
	helper := fmt.Sprintf("%s run --rm --network none --user %s -v %s --entrypoint sh %s", docker, shellQuote(r.redis.user),
		shellQuote(r.redis.dataSpec()+":"+redisconf.DataDir), r.redis.image)
	fmt.Fprintf(&b, "  %s -c %s\n", helper, shellQuote(script))
	// The writers only once Redis is healthy again, as restore does.
	fmt.Fprintf(&b, "  %s start %s && until [ \"$(%s inspect -f '{{.State.Health.Status}}' %s)\" = healthy ]; do sleep 1; done\n",
		docker, r.redis.name, docker, r.redis.name)
	var names []string
	for i := len(r.writers) - 1; i >= 0; i-- {
		names = append(names, r.writers[i].name)
	}
	if len(names) > 0 {
		fmt.Fprintf(&b, "  %s start %s\n", docker, strings.Join(names, " "))
	}
	fmt.Fprintf(&b, "Once the restore is confirmed, delete the data from before it:\n  %s -c %s\n", helper,
		shellQuote("rm -rf "+redisconf.DataDir+"/"+r.mk.aside))
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,:/@%+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
