package ops

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// backupPrefix starts every backup file name; retention only touches files
// named like this.
const backupPrefix = "redis-backup-"

// manifest describes one backup; it is written next to the RDB file as
// <name>.manifest.json.
type manifest struct {
	File         string           `json:"file"`
	CreatedAt    time.Time        `json:"created_at"`
	Size         int64            `json:"size"`
	Keys         int64            `json:"keys"`
	Keyspace     map[string]int64 `json:"keyspace"`
	Expires      int64            `json:"expires"` // keys with a TTL (INFO keyspace expires=); 0 in older manifests
	MD5          string           `json:"md5"`
	SHA256       string           `json:"sha256"`
	RedisVersion string           `json:"redis_version"`
	SourceAddr   string           `json:"source_addr"`
	SourceRole   string           `json:"source_role,omitempty"` // "primary" or "replica": the role of the node copied
	Source       string           `json:"source"`                // "datadir" (BGSAVE, copied from the data dir) or "network" (SYNC)
	RDB          rdbCheck         `json:"rdb"`
}

// manifestPath returns the manifest path of an RDB backup path.
func manifestPath(rdb string) string { return strings.TrimSuffix(rdb, ".rdb") + ".manifest.json" }

// rdbPathOf accepts either a backup's .rdb or its .manifest.json path.
func rdbPathOf(path string) string {
	if base, ok := strings.CutSuffix(path, ".manifest.json"); ok {
		return base + ".rdb"
	}
	return path
}

// The values of --source: where the RDB comes from.
const (
	sourceAuto    = "auto"    // the data dir when it is readable on this host, else the network
	sourceNetwork = "network" // SYNC over a dedicated connection, as redis-cli --rdb
	sourceDatadir = "datadir" // BGSAVE, then copy the RDB from the data dir
)

// backupOptions configures runBackup.
type backupOptions struct {
	dir       string        // backup directory (required)
	source    string        // auto (default), network or datadir
	dataDir   string        // Redis data dir on this host; defaults to CONFIG GET dir
	retention time.Duration // delete backups older than this; default 720h, 0 disables
	wait      time.Duration // how long to wait for BGSAVE; default 30m
	progress  bool
}

func runBackup(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("backup", "--dir DIR [flags]", `
Takes a fresh RDB of the server and keeps it in DIR, from one of two sources
(--source):
  datadir  BGSAVE (waiting for a save already in progress, or scheduling
           after an AOF rewrite), wait until it finishes with progress, then
           copy the RDB from the Redis data dir, which must be readable on
           this host (--data-dir, default CONFIG GET dir);
  network  stream the RDB over a dedicated connection, as redis-cli --rdb
           does (REPLCONF rdb-only, SYNC: the server forks a save for it and
           sends it; the ACL user needs SYNC and REPLCONF). Works wherever
           the server is reachable. With repl-diskless-sync yes (the Redis 7
           default) the server first waits repl-diskless-sync-delay (5 s).
  auto     (default) datadir when the data dir is readable here and holds
           the RDB the BGSAVE just wrote, else network.
Then it checks the RDB (magic header, EOF marker, CRC64 and redis-check-rdb
when installed), writes MD5, SHA256 and a JSON manifest (with the source
used) next to it (temp file + rename), and deletes backups in DIR older than
--retention. With --remote-endpoint (and --remote-bucket; credentials from the
env or --remote-credentials-file) it then uploads every local backup the
remote lacks (the new one first; the RDB, then its manifest; the server's MD5
compared with the manifest's) and applies --retention there too. A failed
upload keeps the local backup and exits 14.`)
	c := e.addConnFlags(fs)
	rf := e.addRemoteFlags(fs, false)
	o := backupOptions{}
	fs.StringVar(&o.dir, "dir", "", "backup directory (required)")
	addSourceFlags(fs, &o, "Redis data directory readable on this host (default: CONFIG GET dir)")
	fs.DurationVar(&o.retention, "retention", 720*time.Hour, "delete backups older than this (0 keeps all)")
	fs.DurationVar(&o.wait, "wait", 30*time.Minute, "maximum time to wait for BGSAVE (or for the server's save for SYNC)")
	fs.BoolVar(&o.progress, "progress", false, "show progress on stderr even when it is not a terminal")
	sf := e.addSentinelFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c.markSet(fs)
	if err := o.checkSource(); err != nil {
		return err
	}
	if o.dir == "" {
		fs.Usage()
		return withCode(ExitUsage, errors.New("--dir is required"))
	}
	o.progress = o.progress || e.isTerminal(e.stderr)
	remote, err := rf.openIfConfigured(e)
	if err != nil {
		return err
	}
	client, err := connectBackupNode(ctx, e, c, sf, &o)
	if err != nil {
		return err
	}
	defer client.Close()
	path, m, err := backup(ctx, e, client, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup %s size=%s keys=%d sha256=%s checked-by=%s source=%s node=%s role=%s\n", path, humanBytes(m.Size), m.Keys, m.SHA256, m.RDB.Checker, m.Source, m.SourceAddr, m.SourceRole)
	deleted, err := applyRetention(o, e.now(), path)
	for _, d := range deleted {
		fmt.Fprintf(e.stdout, "retention: deleted %s (older than %v)\n", d, o.retention)
	}
	if remote != nil {
		err = errors.Join(err, runRemoteBackupStep(ctx, e, remote, o, path, m))
	}
	return err
}

// connectBackupNode resolves the connection, picks the node to copy (backupNode; it may change
// o.source) and connects to it; the error is classified as connect's.
func connectBackupNode(ctx context.Context, e *env, c *connFlags, sf *sentinelFlags, o *backupOptions) (*redis.Client, error) {
	opts, err := c.options(ctx, e)
	if err != nil {
		return nil, err
	}
	if o.source, err = backupNode(ctx, e, sf, opts, o.source); err != nil {
		return nil, err
	}
	client := redis.NewClient(opts)
	// MISCONF (a failing save) refuses PING but the connection is authenticated: reported later.
	if err := client.Ping(ctx).Err(); err != nil && classify(err) != ExitPersistence {
		_ = client.Close()
		return nil, fmt.Errorf("connect to %s as %s: %w", opts.Addr, opts.Username, err)
	}
	return client, nil
}

// addSourceFlags declares --source and --data-dir (backup and schedule).
func addSourceFlags(fs *flag.FlagSet, o *backupOptions, dataDirHelp string) {
	fs.StringVar(&o.source, "source", sourceAuto, "where the RDB comes from: auto (datadir when the data dir is readable here, else network), network (SYNC over the connection, as redis-cli --rdb) or datadir (BGSAVE + copy from --data-dir)")
	fs.StringVar(&o.dataDir, "data-dir", "", dataDirHelp+"; not with --source network")
}

// checkSource is the usage check of --source and --data-dir.
func (o *backupOptions) checkSource() error {
	switch o.source {
	case sourceAuto, sourceDatadir:
		return nil
	case sourceNetwork:
		if o.dataDir != "" {
			return withCode(ExitUsage, errors.New("--data-dir has no effect with --source network (the RDB comes over the connection)"))
		}
		return nil
	}
	return withCode(ExitUsage, fmt.Errorf("--source must be one of auto, network, datadir, got %q", o.source))
}

// roleName is INFO's role as the backup line and manifest name it.
func roleName(role string) string {
	if role == "slave" {
		return "replica"
	}
	if role == "master" {
		return "primary"
	}
	return role
}

// backupInSyncLag is the largest lag (seconds since the replica's last acknowledgement, as the
// primary reports it) of a replica a backup is taken from; at least topology.minReplicasMaxLag's
// largest usual value, so that a replica the primary counts as in sync qualifies.
const backupInSyncLag = 10

// backupNode points opts at the node a backup copies, and returns the source to use there. Without
// Sentinels it is opts.Addr as given, with source unchanged. With them it is the replica the
// current primary reports online with the smallest lag, at most backupInSyncLag seconds (so that the
// primary, which serves the queues, never forks for a backup), else the primary. The data dir on
// this host belongs to the --addr node only: for another node, source auto becomes network.
func backupNode(ctx context.Context, e *env, sf *sentinelFlags, opts *redis.Options, source string) (string, error) {
	addrs, err := sf.list()
	if err != nil || len(addrs) == 0 {
		return source, err
	}
	pw, err := sf.password(e)
	if err != nil {
		return source, err
	}
	primary, _, err := agreedPrimary(querySentinels(ctx, addrs, sf.master, pw, opts.ReadTimeout), sf.master)
	if err != nil {
		return source, err
	}
	mounted := opts.Addr
	o := *opts
	o.Addr = primary
	pc := redis.NewClient(&o)
	defer pc.Close()
	inf, err := fetchInfo(ctx, pc, "replication")
	if err != nil {
		return source, fmt.Errorf("primary %s (named by the Sentinels): %w", primary, err)
	}
	best, bestLag := primary, math.Inf(1)
	for replica, lag := range replicaLags(inf) {
		if lag <= backupInSyncLag && (lag < bestLag || lag == bestLag && replica < best) {
			best, bestLag = replica, lag
		}
	}
	opts.Addr = best
	if best != mounted && source == sourceAuto {
		source = sourceNetwork
	}
	return source, nil
}

// applyRetention deletes the backups older than o.retention (none when it is
// 0), never keep.
func applyRetention(o backupOptions, now time.Time, keep string) ([]string, error) {
	if o.retention <= 0 {
		return nil, nil
	}
	return prune(o.dir, o.retention, now, keep)
}

// backup performs one backup and returns the RDB path and its manifest.
func backup(ctx context.Context, e *env, c *redis.Client, o backupOptions) (string, manifest, error) {
	tmp, err := openBackupTemp(o.dir)
	if err != nil {
		return "", manifest{}, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	defer tmp.Close()
	src, err := datadirRDB(ctx, e, c, o)
	if err != nil {
		return "", manifest{}, err
	}
	inf, err := fetchInfo(ctx, c, "server", "keyspace", "replication")
	if err != nil {
		return "", manifest{}, err
	}
	m := manifest{CreatedAt: e.now().UTC(), Keys: inf.totalKeys(), Keyspace: inf.keyspace(), Expires: inf.totalExpires(),
		RedisVersion: inf["redis_version"], SourceAddr: c.Options().Addr, SourceRole: roleName(inf["role"]), Source: sourceDatadir}
	if src != "" {
		err = copyAndHash(src, tmp, &m, newProgress(o.progress, e.stderr, "copying bytes", 0))
	} else {
		m.Source = sourceNetwork
		p := newProgress(o.progress, e.stderr, "receiving RDB", 0)
		err = writeHashed(tmp, &m, p, func(w io.Writer) (int64, error) { return syncRDB(ctx, c.Options(), w, p, o.wait) })
		err = syncFailure(ctx, c, err)
	}
	if err != nil {
		return "", m, err
	}
	if m.RDB, err = checkRDB(ctx, tmp.Name()); err != nil {
		return "", m, withCode(ExitVerify, fmt.Errorf("RDB taken from the %s fails its check: %w", m.Source, err))
	}
	final := filepath.Join(o.dir, backupPrefix+m.CreatedAt.Format("20060102T150405.000Z")+".rdb")
	m.File = filepath.Base(final)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", m, fmt.Errorf("rename backup into place: %w", err)
	}
	if err := writeJSONAtomic(manifestPath(final), m); err != nil {
		return "", m, err
	}
	return final, m, syncDir(o.dir)
}

// datadirRDB returns the path of the RDB a BGSAVE has just written into the
// data dir on this host, or "" when the RDB is to come over the network:
// always with --source network; with auto when the data dir is not readable
// here or its RDB was not written by that BGSAVE (a directory of the same
// name that belongs to another server). With --source datadir both are
// errors.
func datadirRDB(ctx context.Context, e *env, c *redis.Client, o backupOptions) (string, error) {
	if o.source == sourceNetwork {
		return "", nil
	}
	fallback := func(err error) (string, error) {
		if o.source == sourceDatadir {
			return "", err
		}
		if o.progress {
			fmt.Fprintf(e.stderr, "taking the RDB over the network: %v\n", err)
		}
		return "", nil
	}
	src, err := rdbSource(ctx, c, o.dataDir)
	if err != nil {
		return fallback(err)
	}
	since := time.Now()
	if err := bgsave(ctx, e, c, o); err != nil {
		return "", err
	}
	if err := checkFresh(src, since); err != nil {
		return fallback(err)
	}
	return src, nil
}

// openBackupTemp creates the temp file the RDB is copied into; failing here
// (before BGSAVE) is how an unwritable backup dir is reported.
func openBackupTemp(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("backup dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".redis-backup-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("backup dir %s is not writable: %w", dir, err)
	}
	return f, nil
}

// rdbSource returns the path of the server's RDB file on this host: the
// data dir (dataDir, else CONFIG GET dir) must be a directory this process
// can read, and the RDB in it, when there is one, a file it can open.
func rdbSource(ctx context.Context, c *redis.Client, dataDir string) (string, error) {
	cfg, err := c.ConfigGet(ctx, "dbfilename").Result()
	if err != nil {
		return "", fmt.Errorf("CONFIG GET dbfilename: %w", err)
	}
	if dataDir == "" {
		dir, err := c.ConfigGet(ctx, "dir").Result()
		if err != nil {
			return "", fmt.Errorf("CONFIG GET dir: %w", err)
		}
		dataDir = dir["dir"]
	}
	path := filepath.Join(dataDir, cfg["dbfilename"])
	if err := readableRDB(dataDir, path); err != nil {
		return "", fmt.Errorf("redis data dir %q is not readable on this host (run on the Redis host as a user who can read it, pass --data-dir with the mounted volume, or take the RDB over the connection with --source network): %w", dataDir, err)
	}
	return path, nil
}

// readableRDB checks that dir is a directory this process can list and that
// rdb, unless it does not exist yet, opens for reading.
func readableRDB(dir, rdb string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := d.Readdirnames(1); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	f, err := os.Open(rdb)
	if errors.Is(err, os.ErrNotExist) {
		return nil // the BGSAVE writes it
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// checkFresh fails unless rdb was written at or after since (by the save
// just made): a directory that is not the server's (the same path on another
// host, another server's data) holds no such file.
func checkFresh(rdb string, since time.Time) error {
	st, err := os.Stat(rdb)
	if err != nil {
		return fmt.Errorf("the BGSAVE just made wrote no %s on this host (is the data dir this server's?): %w", rdb, err)
	}
	// One second of slack for file systems that keep whole seconds.
	if st.ModTime().Before(since.Add(-time.Second)) {
		return fmt.Errorf("%s was not written by the BGSAVE just made (modified %s, BGSAVE at %s): the data dir on this host is not this server's",
			rdb, st.ModTime().UTC().Format(time.RFC3339), since.UTC().Format(time.RFC3339))
	}
	return nil
}

// bgsave starts a BGSAVE and waits until a save started after the call has
// finished successfully.
func bgsave(ctx context.Context, e *env, c *redis.Client, o backupOptions) error {
	before, err := fetchInfo(ctx, c, "persistence")
	if err != nil {
		return err
	}
	for {
		err = c.Do(ctx, "BGSAVE", "SCHEDULE").Err()
		if err == nil || !strings.Contains(err.Error(), "already in progress") {
			break
		}
		// A save that started before us may miss recent writes: wait, retry.
		if _, err := waitSave(ctx, e, c, o, -1); err != nil {
			return err
		}
	}
	if err != nil {
		return fmt.Errorf("BGSAVE: %w", err)
	}
	_, err = waitSave(ctx, e, c, o, before.int("rdb_saves"))
	return err
}

// waitSave polls INFO persistence until no save is running and, when
// savesBefore >= 0, rdb_saves has grown past it. It reports progress from
// current_save_keys_processed/total and fails on rdb_last_bgsave_status:err.
func waitSave(ctx context.Context, e *env, c *redis.Client, o backupOptions, savesBefore int64) (info, error) {
	deadline := time.Now().Add(o.wait)
	var p *progress
	for {
		inf, err := fetchInfo(ctx, c, "persistence")
		if err != nil {
			return nil, err
		}
		running := inf["rdb_bgsave_in_progress"] == "1"
		if running && p == nil {
			p = newProgress(o.progress, e.stderr, "BGSAVE keys", inf.int("current_save_keys_total"))
		}
		p.set(inf.int("current_save_keys_processed"))
		if !running && (savesBefore < 0 || inf.int("rdb_saves") > savesBefore) {
			p.finish(inf.int("current_save_keys_total"))
			if inf["rdb_last_bgsave_status"] != "ok" {
				return nil, withCode(ExitPersistence, fmt.Errorf("BGSAVE failed: rdb_last_bgsave_status:%s (see the Redis log)", inf["rdb_last_bgsave_status"]))
			}
			return inf, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("BGSAVE not finished after %v (rdb_bgsave_in_progress:%s)", o.wait, inf["rdb_bgsave_in_progress"])
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// copyAndHash copies src into dst, fsyncs it, and fills size and checksums.
func copyAndHash(src string, dst *os.File, m *manifest, p *progress) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open RDB %s: %w", src, err)
	}
	defer in.Close()
	if st, err := in.Stat(); err == nil {
		p.setTotal(st.Size())
	}
	return writeHashed(dst, m, p, func(w io.Writer) (int64, error) {
		n, err := io.Copy(w, in)
		if err != nil {
			return n, fmt.Errorf("copy RDB to %s: %w", dst.Name(), err)
		}
		return n, nil
	})
}

// writeHashed writes what fill writes into dst while hashing it and showing
// progress, fsyncs dst, and fills size and checksums.
func writeHashed(dst *os.File, m *manifest, p *progress, fill func(io.Writer) (int64, error)) error {
	h5, h256 := md5.New(), sha256.New()
	n, err := fill(io.MultiWriter(dst, h5, h256, p))
	if err != nil {
		return err
	}
	p.finish(n)
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("fsync backup: %w", err)
	}
	m.Size, m.MD5, m.SHA256 = n, hex.EncodeToString(h5.Sum(nil)), hex.EncodeToString(h256.Sum(nil))
	return nil
}

// hashFile returns the size, MD5 and SHA256 of a file.
func hashFile(path string) (size int64, md5hex, sha256hex string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	h5, h256 := md5.New(), sha256.New()
	n, err := io.Copy(io.MultiWriter(h5, h256), f)
	if err != nil {
		return 0, "", "", fmt.Errorf("read %s: %w", path, err)
	}
	return n, hex.EncodeToString(h5.Sum(nil)), hex.EncodeToString(h256.Sum(nil)), nil
}

// writeJSONAtomic writes v as indented JSON via a temp file and rename.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".manifest-*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// readManifest reads the manifest of an RDB backup.
func readManifest(rdb string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(manifestPath(rdb))
	if err != nil {
		return m, fmt.Errorf("read manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("parse manifest %s: %w", manifestPath(rdb), err)
	}
	return m, nil
}

// verifyBackup re-checks size, MD5 and SHA256 against the manifest and the
// RDB format. Every failure carries ExitVerify.
func verifyBackup(ctx context.Context, rdb string) (manifest, error) {
	m, err := readManifest(rdb)
	if err != nil {
		return m, withCode(ExitVerify, err)
	}
	size, md5hex, sha, err := hashFile(rdb)
	if err != nil {
		return m, withCode(ExitVerify, err)
	}
	var bad []string
	if size != m.Size {
		bad = append(bad, fmt.Sprintf("size %d, manifest %d", size, m.Size))
	}
	if md5hex != m.MD5 {
		bad = append(bad, "MD5 mismatch")
	}
	if sha != m.SHA256 {
		bad = append(bad, "SHA256 mismatch")
	}
	if len(bad) > 0 {
		return m, withCode(ExitVerify, fmt.Errorf("%s: %s", rdb, strings.Join(bad, ", ")))
	}
	if _, err := checkRDB(ctx, rdb); err != nil {
		return m, withCode(ExitVerify, err)
	}
	return m, nil
}

func runVerify(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("verify", "FILE | --remote [--stack NAME] NAME", `
Re-checks a backup (its .rdb or .manifest.json path): size, MD5 and SHA256
against the manifest, then the RDB format (magic, EOF marker, CRC64,
redis-check-rdb when installed). Exit 9 on any mismatch. With --remote, NAME
(a backup file name, or latest) is downloaded from the remote copy with its
manifest into a temp dir and checked there.`)
	stack := fs.String("stack", "", "with --remote: read the remote target and its credentials from this Pulumi stack's outputs")
	r := e.addRemoteFlags(fs, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return withCode(ExitUsage, errors.New("verify takes exactly one FILE"))
	}
	if r.use {
		s, err := resolveRemote(ctx, e, r, *stack)
		if err != nil {
			return err
		}
		return verifyRemote(ctx, e, s, fs.Arg(0))
	}
	rdb := rdbPathOf(fs.Arg(0))
	m, err := verifyBackup(ctx, rdb)
	if err != nil {
		fmt.Fprintf(e.stdout, "FAILED %s: %v\n", rdb, err)
		return withCode(ExitVerify, errReported)
	}
	fmt.Fprintf(e.stdout, "OK %s size=%d keys=%d sha256=%s rdb_version=%d\n", rdb, m.Size, m.Keys, m.SHA256, m.RDB.Version)
	return nil
}
