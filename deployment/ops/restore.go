package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"
)

// restoreOptions configures runRestore.
type restoreOptions struct {
	dataDir       string        // Redis data dir on this host (required unless --shutdown reads it)
	dbfilename    string        // RDB file name in the data dir; default dump.rdb
	appenddirname string        // AOF folder in the data dir; default appendonlydir
	serverStopped bool          // operator confirms Redis is stopped
	shutdown      bool          // stop Redis with SHUTDOWN NOSAVE first
	finish        bool          // second step: enable AOF on the restarted server
	force         bool          // finish even when the key count differs
	wait          time.Duration // how long to wait for the AOF rewrite; default 30m
}

const restoreHelp = `
Restores a verified backup in two steps, because with appendonly yes Redis
loads the AOF and ignores a dropped-in dump.rdb (and a later save overwrites it).

Step 1 (Redis stopped; --data-dir on this host):
  redis-ops restore --data-dir /data --server-stopped FILE   (or --shutdown to
  send SHUTDOWN NOSAVE first). Verifies FILE (refuses on failure), moves the
  current dump.rdb and appendonlydir/ into /data/pre-restore-<time>/ (nothing
  is deleted), places the backup as dump.rdb and prints the next steps.
Step 2: start Redis once with AOF off (add "--appendonly no" to its command),
  then run redis-ops restore --finish FILE: checks the key count against the
  manifest, runs CONFIG SET appendonly yes and waits until the AOF rewrite has
  finished (aof_rewrite_in_progress:0, aof_last_bgrewrite_status:ok).
Step 3: restart Redis with its normal configuration (appendonly yes); it loads
  the new AOF, which holds the restored data.`

func runRestore(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("restore", "[--finish] FILE [flags]", restoreHelp)
	c := e.addConnFlags(fs)
	o := restoreOptions{}
	fs.StringVar(&o.dataDir, "data-dir", "", "Redis data directory on this host (default with --shutdown: CONFIG GET dir)")
	fs.StringVar(&o.dbfilename, "dbfilename", "dump.rdb", "RDB file name in the data dir")
	fs.StringVar(&o.appenddirname, "appenddirname", "appendonlydir", "AOF folder name in the data dir")
	fs.BoolVar(&o.serverStopped, "server-stopped", false, "confirm Redis is stopped (checked: it must not answer)")
	fs.BoolVar(&o.shutdown, "shutdown", false, "stop Redis with SHUTDOWN NOSAVE before step 1")
	fs.BoolVar(&o.finish, "finish", false, "step 2: on the server restarted with --appendonly no, check keys and enable AOF")
	fs.BoolVar(&o.force, "force", false, "with --finish: continue when the key count differs from the manifest")
	fs.DurationVar(&o.wait, "wait", 30*time.Minute, "maximum time to wait for the AOF rewrite")
	if err := parse(fs, args); err != nil {
		return err
	}
	c.markSet(fs)
	if fs.NArg() != 1 {
		fs.Usage()
		return withCode(ExitUsage, errors.New("restore takes exactly one FILE"))
	}
	rdb := rdbPathOf(fs.Arg(0))
	m, err := verifyBackup(ctx, rdb)
	if err != nil {
		return withCode(ExitVerify, fmt.Errorf("refusing to restore %s: %w", rdb, err))
	}
	if o.finish {
		return finishRestore(ctx, e, c, o, m)
	}
	return prepareRestore(ctx, e, c, o, rdb)
}

// prepareRestore is step 1.
func prepareRestore(ctx context.Context, e *env, c *connFlags, o restoreOptions, rdb string) error {
	var err error
	switch {
	case o.shutdown:
		err = shutdownServer(ctx, e, c, &o)
	case o.serverStopped:
		err = ensureStopped(ctx, e, c)
	default:
		err = withCode(ExitUsage, errors.New("Redis must be stopped: stop it and pass --server-stopped, or pass --shutdown"))
	}
	if err != nil {
		return err
	}
	if o.dataDir == "" {
		return withCode(ExitUsage, errors.New("--data-dir is required"))
	}
	if err := checkDataDir(o.dataDir); err != nil {
		return err
	}
	saved, err := moveAside(o, e.now())
	if err != nil {
		return err
	}
	if err := placeBackup(rdb, filepath.Join(o.dataDir, o.dbfilename)); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, `Restore step 1 done.
  previous data kept in: %s
  backup placed as:      %s
Next:
  2. Start Redis once with AOF off: add "--appendonly no" to its command line
     (redis-server <config> --appendonly no; in the container, the same flag).
  3. Run: redis-ops restore --finish %s  (with the usual connection flags)
     It checks the key count, runs CONFIG SET appendonly yes and waits for the AOF rewrite.
  4. Restart Redis with its normal configuration (appendonly yes).
Do not start Redis with appendonly yes before step 3: it would load an empty AOF and
a later save would overwrite the restored dump.rdb.
`, saved, filepath.Join(o.dataDir, o.dbfilename), rdb)
	return nil
}

// shutdownServer reads dir/dbfilename/appenddirname (unless given), sends
// SHUTDOWN NOSAVE and waits until the server no longer answers.
func shutdownServer(ctx context.Context, e *env, c *connFlags, o *restoreOptions) error {
	client, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer client.Close()
	cfg, err := client.ConfigGet(ctx, "*").Result()
	if err != nil {
		return fmt.Errorf("CONFIG GET: %w", err)
	}
	if o.dataDir == "" {
		o.dataDir = cfg["dir"]
	}
	if v := cfg["dbfilename"]; v != "" {
		o.dbfilename = v
	}
	if v := cfg["appenddirname"]; v != "" {
		o.appenddirname = v
	}
	// Check before stopping anything: a data dir that is not on this host
	// (e.g. /data inside a container) must not leave Redis down.
	if err := checkDataDir(o.dataDir); err != nil {
		return err
	}
	if err := client.ShutdownNoSave(ctx).Err(); err != nil && classify(err) != ExitUnreachable {
		return fmt.Errorf("SHUTDOWN NOSAVE: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := ensureStopped(ctx, e, c); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("Redis still answers 30s after SHUTDOWN NOSAVE")
}

// ensureStopped returns nil only when the server cannot be reached.
func ensureStopped(ctx context.Context, e *env, c *connFlags) error {
	client, err := c.connect(ctx, e)
	if err == nil {
		_ = client.Close()
		return errors.New("Redis still answers at the given address; stop it first (or use --shutdown)")
	}
	if classify(err) != ExitUnreachable {
		return fmt.Errorf("Redis seems to be running (it answered: %v); stop it first", err)
	}
	return nil
}

// checkDataDir fails unless dir is a directory on this host that we can
// write to.
func checkDataDir(dir string) error {
	f, err := os.CreateTemp(dir, ".redis-ops-probe-*")
	if err != nil {
		return fmt.Errorf("redis data dir %q is not writable on this host (run on the Redis host or mount the volume): %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// moveAside moves the current RDB and AOF folder into pre-restore-<time>/ in
// the data dir and returns that folder. Nothing is deleted.
func moveAside(o restoreOptions, now time.Time) (string, error) {
	saved := filepath.Join(o.dataDir, "pre-restore-"+now.UTC().Format("20060102T150405.000Z"))
	if err := os.Mkdir(saved, 0o750); err != nil {
		return "", fmt.Errorf("create %s: %w", saved, err)
	}
	for _, name := range []string{o.dbfilename, o.appenddirname} {
		err := os.Rename(filepath.Join(o.dataDir, name), filepath.Join(saved, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return saved, fmt.Errorf("move %s aside: %w", name, err)
		}
	}
	return saved, syncDir(o.dataDir)
}

// placeBackup copies rdb to dst via a temp file in dst's folder, checks the
// copy's SHA256 and renames it into place.
func placeBackup(rdb, dst string) error {
	m, err := readManifest(rdb)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".restore-*.tmp")
	if err != nil {
		return fmt.Errorf("data dir not writable: %w", err)
	}
	defer os.Remove(tmp.Name())
	var copied manifest
	err = copyAndHash(rdb, tmp, &copied, nil)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", tmp.Name(), cerr)
	}
	if err != nil {
		return err
	}
	if copied.SHA256 != m.SHA256 {
		return withCode(ExitVerify, errors.New("copy of the backup in the data dir has a different SHA256"))
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("place backup as %s: %w", dst, err)
	}
	return syncDir(filepath.Dir(dst))
}

// finishRestore is step 2.
func finishRestore(ctx context.Context, e *env, c *connFlags, o restoreOptions, m manifest) error {
	client, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer client.Close()
	inf, err := fetchInfo(ctx, client, "persistence", "keyspace")
	if err != nil {
		return err
	}
	want, got := m.Keys, inf.totalKeys()
	if m.RDB.Keys > 0 {
		want = m.RDB.Keys
	}
	if got != want && !o.force {
		hint := ""
		if inf["aof_enabled"] == "1" {
			hint = " (AOF is on: Redis loaded the AOF, not the restored dump.rdb; restart it with --appendonly no)"
		}
		return withCode(ExitVerify, fmt.Errorf("server has %d keys, backup has %d%s; --force to continue", got, want, hint))
	}
	if inf["aof_enabled"] == "1" {
		fmt.Fprintf(e.stdout, "AOF already on and %d keys present; nothing to do\n", got)
		return nil
	}
	if err := enableAOF(ctx, client, inf.int("aof_rewrites"), o.wait); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Restore step 2 done: %d keys, AOF enabled and rewritten.\nNext: restart Redis with its normal configuration (appendonly yes).\n", got)
	return nil
}

// enableAOF runs CONFIG SET appendonly yes and waits for the rewrite it
// starts to finish with aof_last_bgrewrite_status:ok.
func enableAOF(ctx context.Context, c *redis.Client, rewritesBefore int64, wait time.Duration) error {
	if err := c.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		return fmt.Errorf("CONFIG SET appendonly yes: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		inf, err := fetchInfo(ctx, c, "persistence")
		if err != nil {
			return err
		}
		busy := inf["aof_rewrite_in_progress"] == "1" || inf["aof_rewrite_scheduled"] == "1"
		if !busy && inf.int("aof_rewrites") > rewritesBefore {
			if s := inf["aof_last_bgrewrite_status"]; s != "ok" {
				return withCode(ExitPersistence, fmt.Errorf("AOF rewrite failed: aof_last_bgrewrite_status:%s", s))
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("AOF rewrite not finished after %v (aof_rewrite_in_progress:%s)", wait, inf["aof_rewrite_in_progress"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}
