package ops

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/tests/redistest"
)

func TestRedisCRC64(t *testing.T) {
	// Check value from Redis' crc64.c self-test.
	if got := redisCRC64(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("crc64(123456789) = %016x, want e9c6d914c4b8d9ca", got)
	}
	split := redisCRC64(redisCRC64(0, []byte("1234")), []byte("56789"))
	if split != 0xe9c6d914c4b8d9ca {
		t.Fatalf("streaming crc64 = %016x", split)
	}
}

// backupOnce seeds a server, backs it up into a new dir and returns the
// server, the dir and the RDB path.
func backupOnce(t *testing.T) (addr, dir, rdb string) {
	t.Helper()
	s := startRedis(t)
	seed(t, opsClient(t, s))
	dir = t.TempDir()
	r := cli(t, s.Addr(), nil, "backup", "--dir", dir, "--progress")
	if r.code != ExitOK {
		t.Fatalf("backup: %v", r)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*.rdb"))
	if len(matches) != 1 {
		t.Fatalf("backup files: %v", matches)
	}
	return s.Addr(), dir, matches[0]
}

func TestBackupManifestVerifyList(t *testing.T) {
	addr, dir, rdb := backupOnce(t)
	m, err := readManifest(rdb)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(rdb)
	if m.Size != st.Size() || m.Keys != 20 || m.Keyspace["db0"] != 20 || len(m.MD5) != 32 || len(m.SHA256) != 64 ||
		!strings.HasPrefix(m.RedisVersion, "7.") || m.SourceAddr != addr || m.RDB.Version < 9 || m.RDB.Checker != "redis-check-rdb" || m.RDB.Keys != 20 {
		t.Errorf("manifest: %+v", m)
	}
	if time.Since(m.CreatedAt) > time.Minute {
		t.Errorf("created_at %v", m.CreatedAt)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Errorf("temp files left: %v", leftovers)
	}
	if r := cli(t, addr, nil, "verify", rdb); r.code != ExitOK || !strings.HasPrefix(r.stdout, "OK ") {
		t.Errorf("verify: %v", r)
	}
	if r := cli(t, addr, nil, "verify", manifestPath(rdb)); r.code != ExitOK {
		t.Errorf("verify by manifest path: %v", r)
	}
	if r := cli(t, addr, nil, "list", "--dir", dir); r.code != ExitOK || !strings.Contains(r.stdout, filepath.Base(rdb)) || !strings.Contains(r.stdout, " ok") {
		t.Errorf("list: %v", r)
	}
	if r := cli(t, addr, nil, "list", "--dir", dir, "--quick"); r.code != ExitOK || !strings.Contains(r.stdout, "size-ok") {
		t.Errorf("list --quick: %v", r)
	}
	if _, err := checkRDBFormat(rdb); err != nil {
		t.Errorf("builtin RDB check on a good file: %v", err)
	}
}

// corrupt copies a backup (RDB + manifest) into a new dir and applies f to
// the RDB bytes.
func corrupt(t *testing.T, rdb string, f func([]byte) []byte) string {
	t.Helper()
	dir := t.TempDir()
	dst := filepath.Join(dir, filepath.Base(rdb))
	b, err := os.ReadFile(rdb)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(manifestPath(rdb))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, f(append([]byte(nil), b...)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifestPath(dst), mb, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestCorruptBackupsFailVerifyAndRestore(t *testing.T) {
	addr, _, rdb := backupOnce(t)
	cases := map[string]func([]byte) []byte{
		"flipped byte": func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)-20] },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			bad := corrupt(t, rdb, f)
			if r := cli(t, addr, nil, "verify", bad); r.code != ExitVerify || !strings.HasPrefix(r.stdout, "FAILED") {
				t.Errorf("verify: %v", r)
			}
			// Refused before the engine is contacted (it would exit 11: there is none at that address).
			r := cli(t, "127.0.0.1:1", nil, "restore", "--redis-container", "redis", "--docker-host", "unix:///nonexistent/docker.sock", bad)
			if r.code != ExitVerify || !strings.Contains(r.stderr, "refusing to restore") {
				t.Errorf("restore: %v", r)
			}
			if r := cli(t, addr, nil, "list", "--dir", filepath.Dir(bad)); r.code != ExitVerify || !strings.Contains(r.stdout, "FAILED") {
				t.Errorf("list: %v", r)
			}
		})
	}
	// The RDB-level checks alone (no manifest): the built-in CRC64 and
	// redis-check-rdb both catch a flipped byte; a truncated file has no EOF.
	b, _ := os.ReadFile(rdb)
	flipped := filepath.Join(t.TempDir(), "flipped.rdb")
	b[len(b)/2] ^= 0x01
	_ = os.WriteFile(flipped, b, 0o644)
	if _, err := checkRDBFormat(flipped); err == nil || !strings.Contains(err.Error(), "CRC64 mismatch") {
		t.Errorf("builtin check on flipped byte: %v", err)
	}
	if _, err := runRedisCheckRDB(context.Background(), flipped); err == nil {
		t.Error("redis-check-rdb accepted a flipped byte")
	}
	truncated := filepath.Join(t.TempDir(), "truncated.rdb")
	_ = os.WriteFile(truncated, b[:len(b)-20], 0o644)
	if _, err := checkRDBFormat(truncated); err == nil {
		t.Error("builtin check accepted a truncated file")
	}
	if r := cli(t, addr, nil, "verify", flipped); r.code != ExitVerify || !strings.Contains(r.stdout, "manifest") {
		t.Errorf("verify without manifest: %v", r)
	}
}

func TestBackupFailures(t *testing.T) {
	s := startRedis(t)
	seed(t, opsClient(t, s))
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := cli(t, s.Addr(), nil, "backup", "--dir", filepath.Join(notDir, "sub"))
	if r.code != ExitError || !strings.Contains(r.stderr, "backup dir") {
		t.Errorf("backup dir not writable: %v", r)
	}
	r = cli(t, s.Addr(), nil, "backup", "--dir", t.TempDir(), "--source", "datadir", "--data-dir", "/nonexistent/data")
	if r.code != ExitError || !strings.Contains(r.stderr, "not readable on this host") || !strings.Contains(r.stderr, "--source network") {
		t.Errorf("--source datadir with a data dir not on this host: %v", r)
	}
	r = cli(t, s.Addr(), map[string]string{"REDIS_PASSWORD": "wrong"}, "backup", "--dir", t.TempDir())
	if r.code != ExitAuth {
		t.Errorf("wrong password: %v", r)
	}
	addr := s.Addr()
	s.Stop()
	if r := cli(t, addr, nil, "backup", "--dir", t.TempDir(), "--timeout", "1s"); r.code != ExitUnreachable {
		t.Errorf("server down: %v", r)
	}
	if r := cli(t, addr, nil, "backup"); r.code != ExitUsage {
		t.Errorf("no --dir: %v", r)
	}
}

// writeFakeBackup writes a backup pair; created is the manifest time and
// mtime the files' modification time.
func writeFakeBackup(t *testing.T, dir, name string, created, mtime time.Time, withManifest bool) string {
	t.Helper()
	rdb := filepath.Join(dir, name+".rdb")
	if err := os.WriteFile(rdb, []byte("REDIS0010"), 0o644); err != nil {
		t.Fatal(err)
	}
	files := []string{rdb}
	if withManifest {
		b, _ := json.Marshal(manifest{File: name + ".rdb", CreatedAt: created})
		if err := os.WriteFile(manifestPath(rdb), b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, manifestPath(rdb))
	}
	for _, f := range files {
		if err := os.Chtimes(f, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return rdb
}

func TestRetentionDeletesExactlyOldBackups(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	day := 24 * time.Hour
	// The manifest time wins over mtime: "recent-by-manifest" has an old mtime.
	old1 := writeFakeBackup(t, dir, backupPrefix+"old1", now.Add(-31*day), now.Add(-31*day), true)
	old2 := writeFakeBackup(t, dir, backupPrefix+"old2", now.Add(-30*day-time.Minute), now, true)
	oldNoManifest := writeFakeBackup(t, dir, backupPrefix+"orphan", time.Time{}, now.Add(-40*day), false)
	keep1 := writeFakeBackup(t, dir, backupPrefix+"recent-by-manifest", now.Add(-29*day), now.Add(-60*day), true)
	keep2 := writeFakeBackup(t, dir, backupPrefix+"edge", now.Add(-30*day+time.Minute), now.Add(-30*day+time.Minute), true)
	other := filepath.Join(dir, "not-a-backup.rdb")
	_ = os.WriteFile(other, nil, 0o644)
	_ = os.Chtimes(other, now.Add(-100*day), now.Add(-100*day))

	deleted, err := prune(dir, 720*time.Hour, now, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{old1: true, old2: true, oldNoManifest: true}
	if len(deleted) != len(want) {
		t.Errorf("deleted %v, want %v", deleted, want)
	}
	for _, d := range deleted {
		if !want[d] {
			t.Errorf("deleted %s, which is not older than 30 days", d)
		}
	}
	for p := range want {
		for _, f := range []string{p, manifestPath(p)} {
			if _, err := os.Stat(f); !os.IsNotExist(err) {
				t.Errorf("%s still exists", f)
			}
		}
	}
	for _, f := range []string{keep1, manifestPath(keep1), keep2, manifestPath(keep2), other} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("kept file missing: %v", err)
		}
	}
}

func TestBackupAppliesRetention(t *testing.T) {
	s := startRedis(t)
	seed(t, opsClient(t, s))
	dir := t.TempDir()
	now := time.Now()
	old := writeFakeBackup(t, dir, backupPrefix+"old", now.Add(-8*24*time.Hour), now, true)
	young := writeFakeBackup(t, dir, backupPrefix+"young", now.Add(-6*24*time.Hour), now, true)
	r := cli(t, s.Addr(), nil, "backup", "--dir", dir, "--retention", "168h")
	if r.code != ExitOK || !strings.Contains(r.stdout, "retention: deleted "+old) || strings.Contains(r.stdout, young) {
		t.Fatalf("backup with retention: %v", r)
	}
	// A second backup right after: both new backups are kept.
	if r := cli(t, s.Addr(), nil, "backup", "--dir", dir, "--retention", "168h"); r.code != ExitOK {
		t.Fatalf("second backup: %v", r)
	}
	got, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*.rdb"))
	if len(got) != 3 {
		t.Fatalf("backups after retention: %v", got)
	}
}

// TestBackupWaitsForSaveInProgress: a backup started while an older BGSAVE
// runs holds what was written after that save began, from either source (the
// server's save for SYNC waits for the running one too).
func TestBackupWaitsForSaveInProgress(t *testing.T) {
	for _, source := range []string{sourceDatadir, sourceNetwork} {
		t.Run(source, func(t *testing.T) {
			s := startRedis(t, "--repl-diskless-sync-delay", "0")
			c := opsClient(t, s)
			seed(t, c)
			ctx := context.Background()
			// Slow every save down (20 keys x 20ms) and start one ourselves.
			if err := c.ConfigSet(ctx, "rdb-key-save-delay", "20000").Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.BgSave(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			c.Set(ctx, "written-during-save", "must be in the backup", 0)
			dir := t.TempDir()
			if r := cli(t, s.Addr(), nil, "backup", "--dir", dir, "--source", source); r.code != ExitOK {
				t.Fatalf("backup during a running BGSAVE: %v", r)
			}
			rdb, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*.rdb"))
			m, err := readManifest(rdb[0])
			if err != nil || m.RDB.Keys != 21 || m.Source != source {
				t.Fatalf("backup taken from the older save (keys %d, want 21; source %q): %v", m.RDB.Keys, m.Source, err)
			}
		})
	}
}

// loadRDB starts a fresh redis-server (AOF off) on a copy of rdb as its
// dump.rdb and returns an ops client of it.
func loadRDB(t *testing.T, rdb string) *redis.Client {
	t.Helper()
	dataDir := t.TempDir()
	b, err := os.ReadFile(rdb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "dump.rdb"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := redistest.Start(t, redistest.Options{Args: redisArgs(t, "--appendonly", "no"), Dir: dataDir})
	return opsClient(t, s)
}

// TestNetworkBackupBothReplyForms takes the RDB over the connection from a
// server that answers SYNC with "$<len>" (disk-based) and from one that
// answers with the diskless "$EOF:<mark>" form, then loads each backup into a
// fresh redis-server: every key, value and TTL is back. The server's log
// shows which form it used, and the pseudo-replica is gone afterwards.
func TestNetworkBackupBothReplyForms(t *testing.T) {
	cases := []struct {
		name, log string
		args      []string
	}{
		{"disk-based $len", "Starting BGSAVE for SYNC with target: disk", []string{"--repl-diskless-sync", "no"}},
		{"diskless EOF mark", "Starting BGSAVE for SYNC with target: replicas sockets",
			[]string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := startRedis(t, tc.args...)
			c := opsClient(t, s)
			seed(t, c)
			before := redistest.Snapshot(t, c)
			dir := t.TempDir()
			r := cli(t, s.Addr(), nil, "backup", "--dir", dir, "--source", "network", "--progress")
			if r.code != ExitOK || !strings.Contains(r.stdout, "source=network") || !strings.Contains(r.stderr, "receiving RDB") {
				t.Fatalf("network backup: %v", r)
			}
			if !strings.Contains(s.Log(), tc.log) {
				t.Errorf("server log lacks %q: the other reply form was used\n%s", tc.log, s.Log())
			}
			rdb, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*.rdb"))
			if len(rdb) != 1 {
				t.Fatalf("backup files: %v", rdb)
			}
			m, err := readManifest(rdb[0])
			if err != nil || m.Source != sourceNetwork || m.Keys != 20 || m.RDB.Keys != 20 || m.SourceAddr != s.Addr() || m.RDB.Checker != "redis-check-rdb" {
				t.Errorf("manifest: %+v %v", m, err)
			}
			if r := cli(t, s.Addr(), nil, "verify", rdb[0]); r.code != ExitOK {
				t.Errorf("verify: %v", r)
			}
			waitFor(t, 5*time.Second, "the pseudo-replica to be dropped", func() bool {
				inf, err := fetchInfo(ctx, c, "replication")
				return err == nil && inf["connected_slaves"] == "0"
			})
			compareSnapshots(t, before, redistest.Snapshot(t, loadRDB(t, rdb[0])))
		})
	}
}

// TestBackupSource: auto takes the data dir when it is this server's and
// readable here, else the network; --source datadir refuses a data dir that is
// not readable here or not this server's; a bad --source is a usage error.
func TestBackupSource(t *testing.T) {
	s := startRedis(t, "--repl-diskless-sync-delay", "0")
	seed(t, opsClient(t, s))
	// A readable directory holding an old dump.rdb that the server never writes.
	foreign := t.TempDir()
	old := filepath.Join(foreign, "dump.rdb")
	if err := os.WriteFile(old, []byte("REDIS0010 not this server's"), 0o644); err != nil {
		t.Fatal(err)
	}
	hourAgo := time.Now().Add(-time.Hour)
	if err := os.Chtimes(old, hourAgo, hourAgo); err != nil {
		t.Fatal(err)
	}
	ok := []struct {
		name string
		args []string
		want string
	}{
		{"auto, data dir readable here", nil, sourceDatadir},
		{"datadir", []string{"--source", "datadir"}, sourceDatadir},
		{"datadir with --data-dir", []string{"--source", "datadir", "--data-dir", s.Dir()}, sourceDatadir},
		{"network", []string{"--source", "network"}, sourceNetwork},
		{"auto, data dir not on this host", []string{"--data-dir", "/nonexistent/data"}, sourceNetwork},
		{"auto, data dir of another server", []string{"--source", "auto", "--data-dir", foreign}, sourceNetwork},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := cli(t, s.Addr(), nil, append([]string{"backup", "--dir", dir}, tc.args...)...)
			if r.code != ExitOK || !strings.Contains(r.stdout, "source="+tc.want) {
				t.Fatalf("backup %v: %v", tc.args, r)
			}
			rdb, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*.rdb"))
			m, err := readManifest(rdb[0])
			if err != nil || m.Source != tc.want || m.RDB.Keys != 20 {
				t.Errorf("manifest source %q keys %d, want %q and 20: %v", m.Source, m.RDB.Keys, tc.want, err)
			}
		})
	}
	r := cli(t, s.Addr(), nil, "backup", "--dir", t.TempDir(), "--source", "datadir", "--data-dir", foreign)
	if r.code != ExitError || !strings.Contains(r.stderr, "was not written by the BGSAVE just made") {
		t.Errorf("--source datadir on another server's data dir: %v", r)
	}
	if b, _ := os.ReadFile(old); string(b) != "REDIS0010 not this server's" {
		t.Errorf("the foreign dump.rdb was changed")
	}
	usage := []struct {
		args []string
		want string
	}{
		{[]string{"backup", "--dir", t.TempDir(), "--source", "disk"}, `--source must be one of auto, network, datadir, got "disk"`},
		{[]string{"backup", "--dir", t.TempDir(), "--source", ""}, "--source must be one of auto, network, datadir"},
		{[]string{"backup", "--dir", t.TempDir(), "--source", "network", "--data-dir", s.Dir()}, "--data-dir has no effect with --source network"},
		{[]string{"schedule", "--every", "1s", "--dir", t.TempDir(), "--source", "Network"}, "--source must be one of auto, network, datadir"},
	}
	for _, tc := range usage {
		if r := cli(t, s.Addr(), nil, tc.args...); r.code != ExitUsage || r.stdout != "" || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: want exit 2 and one line %q: %v", tc.args, tc.want, r)
		}
	}
}

// TestNetworkBackupFailures: a wrong password, a user without SYNC or
// REPLCONF, and a server whose save for SYNC fails each give a clear error and
// the exit code of their kind, and leave no file behind.
func TestNetworkBackupFailures(t *testing.T) {
	s := startRedis(t, "--repl-diskless-sync", "no")
	c := opsClient(t, s)
	seed(t, c)
	ctx := context.Background()
	// The declared ops user may take the RDB over the connection.
	for _, cmd := range [][]any{{"SYNC"}, {"REPLCONF", "rdb-only", "1"}, {"REPLCONF", "capa", "eof"}} {
		if got, err := c.Do(ctx, append([]any{"ACL", "DRYRUN", "ops"}, cmd...)...).Text(); err != nil || got != "OK" {
			t.Errorf("ACL DRYRUN ops %v = %q, %v", cmd, got, err)
		}
	}
	for _, rule := range []string{"ACL SETUSER nosync on >pw ~* &* +@all -sync", "ACL SETUSER noreplconf on >pw ~* &* +@all -replconf"} {
		args := []any{}
		for _, f := range strings.Fields(rule) {
			args = append(args, f)
		}
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		vars map[string]string
		code int
		want []string
	}{
		{"wrong password", map[string]string{"REDIS_PASSWORD": "wrong"}, ExitAuth, []string{"WRONGPASS"}},
		{"no SYNC", map[string]string{"REDIS_USERNAME": "nosync", "REDIS_PASSWORD": "pw"}, ExitAuth, []string{"SYNC refused: NOPERM", "+sync +replconf"}},
		{"no REPLCONF", map[string]string{"REDIS_USERNAME": "noreplconf", "REDIS_PASSWORD": "pw"}, ExitAuth, []string{"REPLCONF capa eof: NOPERM", "+sync +replconf"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := cli(t, s.Addr(), tc.vars, "backup", "--dir", dir, "--source", "network")
			if r.code != tc.code || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("want exit %d and one line: %v", tc.code, r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q: %v", w, r)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("files left: %v", entries)
			}
		})
	}
	// The dedicated connection authenticates on its own: a wrong password there
	// is an auth error too (the CLI's first connection catches it before).
	o := &redis.Options{Addr: s.Addr(), Username: "ops", Password: "wrong", ReadTimeout: 5 * time.Second}
	if _, err := syncRDB(ctx, o, io.Discard, nil, time.Minute); exitCode(err) != ExitAuth || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("syncRDB with a wrong password: %v (exit %d)", err, exitCode(err))
	}
	// The server's own save fails (a non-empty directory named dump.rdb blocks
	// its rename): a persistence error, as for BGSAVE.
	block := filepath.Join(s.Dir(), "dump.rdb", "blocker")
	if err := os.MkdirAll(block, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(block)) }) // before the harness's shutdown save
	dir := t.TempDir()
	r := cli(t, s.Addr(), nil, "backup", "--dir", dir, "--source", "network")
	if r.code != ExitPersistence || !strings.Contains(r.stderr, "rdb_last_bgsave_status:err") {
		t.Errorf("failing save for SYNC: %v", r)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files left: %v", entries)
	}
}

// TestNetworkBackupOverTLS: with a rediss:// URL the SYNC connection uses TLS
// too (the server's TLS port speaks nothing else).
func TestNetworkBackupOverTLS(t *testing.T) {
	certDir := t.TempDir()
	cert, key := filepath.Join(certDir, "redis.crt"), filepath.Join(certDir, "redis.key")
	writeSelfSignedCert(t, cert, key)
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s := startRedis(t, "--tls-port", strconv.Itoa(port), "--tls-cert-file", cert, "--tls-key-file", key,
		"--tls-ca-cert-file", cert, "--tls-auth-clients", "no", "--repl-diskless-sync-delay", "0")
	seed(t, opsClient(t, s))
	dir := t.TempDir()
	url := fmt.Sprintf("rediss://127.0.0.1:%d/0?skip_verify=true", port)
	r := cli(t, "", map[string]string{"REDIS_URL": url}, "backup", "--dir", dir, "--source", "network")
	if r.code != ExitOK || !strings.Contains(r.stdout, "keys=20") {
		t.Fatalf("network backup over TLS: %v", r)
	}
	rdb, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*.rdb"))
	if m, err := readManifest(rdb[0]); err != nil || m.Source != sourceNetwork || m.RDB.Keys != 20 || m.SourceAddr != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("manifest: %+v %v", m, err)
	}
}

// writeSelfSignedCert writes a self-signed certificate for 127.0.0.1 and its key (PEM).
func writeSelfSignedCert(t *testing.T, certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}
