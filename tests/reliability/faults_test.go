package reliability_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/realredis"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// writeKeys writes n keys "<prefix>:<i>" with distinct random values in one command each (pipelined)
// and returns the values.
func writeKeys(t *testing.T, c *redis.Client, prefix string, n int) []string {
	t.Helper()
	ctx := realredis.Ctx(t)
	vals := make([]string, n)
	pipe := c.Pipeline()
	for i := range vals {
		buf := make([]byte, 16)
		_, _ = rand.Read(buf)
		vals[i] = hex.EncodeToString(buf) // incompressible, findable in the files
		pipe.Set(ctx, fmt.Sprintf("%s:%d", prefix, i), vals[i], 0)
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	return vals
}

// countPresent returns how many of keys "<prefix>:0..n-1" exist, and the first missing index (-1).
func countPresent(t *testing.T, c *redis.Client, prefix string, n int) (int, int) {
	t.Helper()
	ctx := realredis.Ctx(t)
	present, firstMissing := 0, -1
	for start := 0; start < n; start += 1000 {
		var keys []string
		for i := start; i < n && i < start+1000; i++ {
			keys = append(keys, fmt.Sprintf("%s:%d", prefix, i))
		}
		vals, err := c.MGet(ctx, keys...).Result()
		require.NoError(t, err)
		for j, v := range vals {
			if v != nil {
				present++
			} else if firstMissing < 0 {
				firstMissing = start + j
			}
		}
	}
	return present, firstMissing
}

// aofFile returns the path of the last file of a type ("i" incr, "b" base) in the AOF manifest.
func aofFile(t *testing.T, dataDir, typ string) string {
	t.Helper()
	dir := filepath.Join(dataDir, "appendonlydir")
	manifests, err := filepath.Glob(filepath.Join(dir, "*.manifest"))
	require.NoError(t, err)
	require.Len(t, manifests, 1, "one AOF manifest in %s", dir)
	f, err := os.Open(manifests[0])
	require.NoError(t, err)
	defer f.Close()
	var last string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i := 0; i+1 < len(fields); i++ {
			if fields[i] == "type" && fields[i+1] == typ {
				last = fields[1]
			}
		}
	}
	require.NotEmpty(t, last, "no type %s file in %s", typ, manifests[0])
	return filepath.Join(dir, last)
}

func TestTruncatedAOFTailLoadsEveryCompleteCommand(t *testing.T) {
	const n, cut = 1000, 3
	b := realredis.Start(t, "dev", realredis.Options{})
	writeKeys(t, b.Client(t, redisconf.CeleryUser), "w", n)
	b.Stop() // clean stop: the AOF holds all n commands
	incr := aofFile(t, b.DataDir, "i")
	st, err := os.Stat(incr)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(incr, st.Size()-cut), "cut the tail, as a crash in the middle of a write would")

	offset := len(b.Log())
	b.Restart(t) // aof-load-truncated yes (declared): Redis starts
	log := b.Log()[offset:]
	assert.Contains(t, log, "aof-load-truncated", "Redis says it loaded a truncated AOF")
	back, firstMissing := countPresent(t, b.Client(t, redisconf.CeleryUser), "w", n)
	t.Logf("FIGURE truncated AOF tail: cut %d bytes of %s, Redis started and %d of %d writes are back (first missing: #%d, the last command, whose bytes were cut)",
		cut, filepath.Base(incr), back, n, firstMissing)
	assert.Equal(t, n-1, back, "every complete command is loaded")
	assert.Equal(t, n-1, firstMissing, "only the cut command is missing")
	// Writes work after the recovery and survive another restart.
	require.NoError(t, b.Client(t, redisconf.CeleryUser).Set(realredis.Ctx(t), "after", "1", 0).Err())
	b.Restart(t)
	back, _ = countPresent(t, b.Client(t, redisconf.CeleryUser), "w", n)
	assert.Equal(t, n-1, back)
}

func TestCorruptedAOFInTheMiddleRefusesToStart(t *testing.T) {
	const n = 1000
	b := realredis.Start(t, "dev", realredis.Options{})
	writeKeys(t, b.Client(t, redisconf.CeleryUser), "w", n)
	b.Stop()
	incr := aofFile(t, b.DataDir, "i")
	data, err := os.ReadFile(incr)
	require.NoError(t, err)
	at := len(data)/2 + bytes.Index(data[len(data)/2:], []byte("*3\r\n"))
	require.Greater(t, at, len(data)/2-1, "a command starts after the middle")
	data[at] = 'x' // the command's header is no longer "*<argc>"
	require.NoError(t, os.WriteFile(incr, data, 0o644))

	log, err := redistest.StartExpectFail(t, expectFailOptions(t, b))
	require.Error(t, err, "redis-server exits non-zero")
	assert.Contains(t, log, "Bad file format reading the append only file", "a clear message")
	assert.Contains(t, log, "redis-check-aof", "Redis names the repair tool (which must be run by hand: --fix can drop half the file)")
	t.Logf("FIGURE corrupted AOF: byte %d of %d in %s flipped: Redis refuses to start: %q", at, len(data), filepath.Base(incr), firstLine(log, "Bad file format"))
}

func TestCorruptedRDBRefusesToStartAndVerifyFlagsABadBackup(t *testing.T) {
	const n = 2000
	b := realredis.Start(t, "dev", realredis.Options{})
	vals := writeKeys(t, b.Client(t, redisconf.CeleryUser), "w", n)
	ops := b.Client(t, redisconf.OpsUser)
	ctx := realredis.Ctx(t)

	// A backup with the ops tool, then verify: OK; flipped byte, truncation: FAILED, exit 9.
	pwFile := filepath.Join(t.TempDir(), "ops.password")
	require.NoError(t, os.WriteFile(pwFile, []byte(b.Ops), 0o600))
	backupDir := t.TempDir()
	env := []string{"REDIS_PASSWORD_FILE=" + pwFile}
	res := runTool(t, "redis-ops", backupDir, env, "backup", "--addr", b.Addr(), "--dir", backupDir, "--data-dir", b.DataDir, "--retention", "0")
	require.Equal(t, 0, res.code, res.all())
	noSecret(t, res.all(), "redis-ops backup output", b.Ops)
	backups, err := filepath.Glob(filepath.Join(backupDir, "redis-backup-*.rdb"))
	require.NoError(t, err)
	require.Len(t, backups, 1)
	res = runTool(t, "redis-ops", backupDir, nil, "verify", backups[0])
	require.Equal(t, 0, res.code, "an intact backup verifies: %s", res.all())

	good, err := os.ReadFile(backups[0])
	require.NoError(t, err)
	verdicts := map[string]string{}
	for name, corrupt := range map[string]func([]byte) []byte{
		"flipped byte":              func(d []byte) []byte { d[bytes.Index(d, []byte(vals[n/2]))] ^= 0x01; return d },
		"truncated":                 func(d []byte) []byte { return d[:len(d)-100] },
		"flipped, manifest updated": func(d []byte) []byte { d[bytes.Index(d, []byte(vals[n/3]))] ^= 0x01; return d },
	} {
		data := corrupt(append([]byte(nil), good...))
		require.NoError(t, os.WriteFile(backups[0], data, 0o644))
		if strings.Contains(name, "manifest updated") {
			rewriteManifestChecksums(t, backups[0], data) // only the RDB's own CRC64 can tell now
		}
		res := runTool(t, "redis-ops", backupDir, nil, "verify", backups[0])
		assert.Equal(t, 9, res.code, "%s: verify exits 9: %s", name, res.all())
		assert.Contains(t, res.stdout, "FAILED", name)
		verdicts[name] = strings.ReplaceAll(strings.TrimSpace(firstLine(res.stdout, "FAILED")), filepath.Dir(backups[0])+"/", "")
	}
	for name, v := range verdicts {
		t.Logf("FIGURE corrupted backup (%s): redis-ops verify exit 9: %s", name, v)
	}

	// The AOF base (an RDB, aof-use-rdb-preamble yes) with one flipped byte: Redis refuses to start.
	require.NoError(t, ops.BgRewriteAOF(ctx).Err())
	require.Eventually(t, func() bool {
		info, err := ops.Info(ctx, "persistence").Result()
		return err == nil && strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") &&
			strings.Contains(info, "aof_last_bgrewrite_status:ok")
	}, 30*time.Second, 50*time.Millisecond)
	b.Stop()
	base := aofFile(t, b.DataDir, "b")
	require.True(t, strings.HasSuffix(base, ".rdb"), "the AOF base is an RDB: %s", base)
	data, err := os.ReadFile(base)
	require.NoError(t, err)
	at := bytes.Index(data, []byte(vals[n/2]))
	require.GreaterOrEqual(t, at, 0, "the value is stored uncompressed in the base RDB")
	data[at] ^= 0x01
	require.NoError(t, os.WriteFile(base, data, 0o644))
	log, err := redistest.StartExpectFail(t, expectFailOptions(t, b))
	require.Error(t, err, "redis-server exits non-zero")
	assert.Contains(t, log, "Wrong RDB checksum", "a clear message")
	t.Logf("FIGURE corrupted RDB (AOF base %s, byte %d of %d flipped): Redis refuses to start: %q", filepath.Base(base), at, len(data), firstLine(log, "Wrong RDB checksum"))
}

// rewriteManifestChecksums makes a backup's manifest match data (size, md5, sha256).
func rewriteManifestChecksums(t *testing.T, rdb string, data []byte) {
	t.Helper()
	path := strings.TrimSuffix(rdb, ".rdb") + ".manifest.json"
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	md5sum := exec.Command("md5sum", rdb)
	out, err := md5sum.Output()
	require.NoError(t, err)
	sha := exec.Command("sha256sum", rdb)
	out2, err := sha.Output()
	require.NoError(t, err)
	m["size"], m["md5"], m["sha256"] = len(data), strings.Fields(string(out))[0], strings.Fields(string(out2))[0]
	raw, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, raw, 0o644))
}

// firstLine returns the first line of s containing substr ("" when none).
func firstLine(s, substr string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func TestDiskFullRefusesWritesLoudlyAndLosesNothing(t *testing.T) {
	b := realredis.Start(t, "dev", realredis.Options{})
	b.Stop()
	uid, gid := redisIDs(t)
	if os.Geteuid() != 0 {
		t.Log("FIGURE disk full: not root, cannot mount a small tmpfs; falling back to an unwritable data dir")
		unwritableDataDir(t, b)
		return
	}
	opts := fmt.Sprintf("size=8m,mode=0700,uid=%d,gid=%d", uid, gid)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", b.DataDir).CombinedOutput(); err != nil {
		t.Logf("FIGURE disk full: mount -t tmpfs not permitted here (%v: %s); falling back to an unwritable data dir", err, strings.TrimSpace(string(out)))
		unwritableDataDir(t, b)
		return
	}
	t.Cleanup(func() {
		b.Stop()
		if out, err := exec.Command("umount", b.DataDir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", b.DataDir, err, out)
		}
	})
	b.Restart(t) // on the 8 MiB tmpfs, empty
	c := b.Client(t, redisconf.CeleryUser)
	ctx := realredis.Ctx(t)

	// Leave about 1 MiB free.
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(b.DataDir, &st))
	free := int64(st.Bavail) * int64(st.Bsize)
	filler := filepath.Join(b.DataDir, "filler")
	require.NoError(t, os.WriteFile(filler, make([]byte, free-(1<<20)), 0o600))

	value := strings.Repeat("v", 1024)
	acked := 0
	var refused error
	for i := 0; i < 20000; i++ {
		if err := c.Set(ctx, fmt.Sprintf("d:%d", i), value, 0).Err(); err != nil {
			refused = err
			break
		}
		acked++
	}
	require.Error(t, refused, "writes must be refused once the disk is full")
	assert.Contains(t, refused.Error(), "MISCONF", "refused loudly")
	assert.Contains(t, refused.Error(), "No space left on device")
	more := 0
	for i := 0; i < 50; i++ {
		if c.Set(ctx, "refused", "x", 0).Err() != nil {
			more++
		}
	}
	assert.Equal(t, 50, more, "every further write is refused")
	fullVerdict, healthy := b.Healthcheck(t)
	assert.False(t, healthy, "healthcheck while the disk is full: %s", fullVerdict)
	assert.Contains(t, fullVerdict, "unhealthy")
	got, err := c.Get(ctx, "d:0").Result()
	require.NoError(t, err, "reads still work")
	assert.Equal(t, value, got)

	// Free the space: writes resume by themselves.
	require.NoError(t, os.Remove(filler))
	freed := time.Now()
	require.Eventually(t, func() bool { return c.Set(ctx, "resume", "1", 0).Err() == nil }, 15*time.Second, 50*time.Millisecond,
		"writes resume once space is back")
	resumeAfter := time.Since(freed)
	for i := 0; i < 100; i++ {
		require.NoError(t, c.Set(ctx, fmt.Sprintf("d:%d", acked), value, 0).Err())
		acked++
	}
	require.Eventually(t, func() bool {
		_, ok := b.Healthcheck(t)
		return ok
	}, 15*time.Second, 100*time.Millisecond, "healthy again")

	// Crash now: every acknowledged write, before and after the full disk, must be on disk.
	time.Sleep(2500 * time.Millisecond) // everysec: a write() postponed behind a running fsync waits up to 2 s
	b.Kill9()
	b.Restart(t)
	present, firstMissing := countPresent(t, b.Client(t, redisconf.CeleryUser), "d", acked)
	t.Logf("FIGURE disk full (8 MiB tmpfs): %d writes acknowledged, then refused with %q, healthcheck %q; writes resumed %.1fs after space was freed; after kill -9 and restart %d of %d acknowledged writes are back (lost: %d)",
		acked-100, refused, fullVerdict, resumeAfter.Seconds(), present, acked, acked-present)
	assert.Equal(t, acked, present, "no acknowledged write is lost (first missing: %d)", firstMissing)
}

// unwritableDataDir is the fallback of the disk-full scenario where no tmpfs can be mounted: the data
// directory turns unwritable, a BGSAVE fails, writes are refused; once writable, they resume.
func unwritableDataDir(t *testing.T, b *realredis.Broker) {
	b.Restart(t)
	c := b.Client(t, redisconf.CeleryUser)
	ops := b.Client(t, redisconf.OpsUser)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "before", "1", 0).Err())
	require.NoError(t, os.Chmod(b.DataDir, 0o500))
	t.Cleanup(func() { os.Chmod(b.DataDir, 0o700) })
	_ = ops.BgSave(ctx).Err()
	require.Eventually(t, func() bool { return c.Set(ctx, "k", "v", 0).Err() != nil }, 20*time.Second, 100*time.Millisecond)
	err := c.Set(ctx, "k", "v", 0).Err()
	assert.Contains(t, err.Error(), "MISCONF")
	verdict, ok := b.Healthcheck(t)
	assert.False(t, ok, verdict)
	require.NoError(t, os.Chmod(b.DataDir, 0o700))
	require.Eventually(t, func() bool { _ = ops.BgSave(ctx).Err(); return c.Set(ctx, "after", "1", 0).Err() == nil }, 20*time.Second, 500*time.Millisecond)
	t.Logf("FIGURE disk full (fallback, unwritable /data): writes refused with %q, healthcheck %q, writes resumed once writable", err, verdict)
}
