package ops

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
			dataDir := t.TempDir()
			r := cli(t, "127.0.0.1:1", nil, "restore", "--data-dir", dataDir, "--server-stopped", bad)
			if r.code != ExitVerify || !strings.Contains(r.stderr, "refusing to restore") {
				t.Errorf("restore: %v", r)
			}
			if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
				t.Errorf("restore touched the data dir: %v", entries)
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
	r = cli(t, s.Addr(), nil, "backup", "--dir", t.TempDir(), "--data-dir", "/nonexistent/data")
	if r.code != ExitError || !strings.Contains(r.stderr, "not readable on this host") {
		t.Errorf("data dir not local: %v", r)
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

func TestBackupWaitsForSaveInProgress(t *testing.T) {
	s := startRedis(t)
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
	if r := cli(t, s.Addr(), nil, "backup", "--dir", dir); r.code != ExitOK {
		t.Fatalf("backup during a running BGSAVE: %v", r)
	}
	rdb, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*.rdb"))
	m, err := readManifest(rdb[0])
	if err != nil || m.RDB.Keys != 21 {
		t.Fatalf("backup taken from the older save (keys %d, want 21): %v", m.RDB.Keys, err)
	}
}
