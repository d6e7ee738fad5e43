package ops

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// keyState is a key's type, value and TTL.
type keyState struct {
	typ   string
	value any
	ttl   time.Duration
}

func snapshotAll(t *testing.T, c *redis.Client) map[string]keyState {
	t.Helper()
	ctx := context.Background()
	out := map[string]keyState{}
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ := c.Type(ctx, k).Val()
		var v any
		switch typ {
		case "string":
			v = c.Get(ctx, k).Val()
		case "hash":
			v = c.HGetAll(ctx, k).Val()
		case "list":
			v = c.LRange(ctx, k, 0, -1).Val()
		case "set":
			members := c.SMembers(ctx, k).Val()
			sort.Strings(members)
			v = members
		case "zset":
			v = c.ZRangeWithScores(ctx, k, 0, -1).Val()
		case "stream":
			v = c.XRange(ctx, k, "-", "+").Val()
		}
		out[k] = keyState{typ: typ, value: v, ttl: c.PTTL(ctx, k).Val()}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBackupWipeRestoreRoundTripWithAOF(t *testing.T) {
	ctx := context.Background()
	args := redisArgs(t)
	dataDir := t.TempDir()
	s := redistest.Start(t, redistest.Options{Args: args, Dir: dataDir})
	c := opsClient(t, s)
	seed(t, c)
	before := snapshotAll(t, c)

	backups := t.TempDir()
	if r := cli(t, s.Addr(), nil, "backup", "--dir", backups); r.code != ExitOK {
		t.Fatalf("backup: %v", r)
	}
	rdb, _ := filepath.Glob(filepath.Join(backups, backupPrefix+"*.rdb"))

	// Wipe: FLUSHALL and restart; AOF keeps the (empty) state.
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	c = opsClient(t, s)
	if n := c.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("after wipe: %d keys", n)
	}
	c.Set(ctx, "written-after-wipe", "kept in pre-restore", 0)

	// The trap the procedure avoids: dropping the RDB in with AOF on loads 0 keys.
	if r := cli(t, s.Addr(), nil, "restore", "--finish", rdb[0]); r.code != ExitVerify || !strings.Contains(r.stderr, "AOF is on") {
		t.Fatalf("finish on the AOF server must refuse: %v", r)
	}
	if r := cli(t, s.Addr(), nil, "restore", rdb[0]); r.code != ExitUsage {
		t.Fatalf("restore without --server-stopped/--shutdown: %v", r)
	}
	if r := cli(t, s.Addr(), nil, "restore", "--server-stopped", "--data-dir", dataDir, rdb[0]); r.code != ExitError || !strings.Contains(r.stderr, "still answers") {
		t.Fatalf("--server-stopped while running: %v", r)
	}

	// A data dir that is not on this host: refused before anything stops.
	if r := cli(t, s.Addr(), nil, "restore", "--shutdown", "--data-dir", "/nonexistent/data", rdb[0]); r.code != ExitError || !strings.Contains(r.stderr, "not writable on this host") || !s.Running() {
		t.Fatalf("--shutdown with a remote data dir: %v (running %v)", r, s.Running())
	}

	// Step 1: shut down, move the current data aside, place the backup.
	r := cli(t, s.Addr(), nil, "restore", "--shutdown", rdb[0])
	if r.code != ExitOK || !strings.Contains(r.stdout, "--appendonly no") || !strings.Contains(r.stdout, "restore --finish") {
		t.Fatalf("restore step 1: %v", r)
	}
	if s.Running() {
		t.Fatal("server still running after --shutdown")
	}
	saved, _ := filepath.Glob(filepath.Join(dataDir, "pre-restore-*"))
	if len(saved) != 1 {
		t.Fatalf("pre-restore folder: %v", saved)
	}
	for _, f := range []string{"appendonlydir", "dump.rdb"} {
		if _, err := os.Stat(filepath.Join(saved[0], f)); err != nil {
			t.Errorf("previous %s not kept: %v", f, err)
		}
	}

	// Step 2: start once with AOF off, then --finish.
	s2 := redistest.Start(t, redistest.Options{Args: append(append([]string{}, args...), "--appendonly", "no"), Dir: dataDir})
	if r := cli(t, s2.Addr(), nil, "restore", "--finish", rdb[0]); r.code != ExitOK || !strings.Contains(r.stdout, "AOF enabled") {
		t.Fatalf("restore --finish: %v", r)
	}
	s2.Stop()

	// Step 3: normal start (AOF on): every key with value and TTL.
	s3 := redistest.Start(t, redistest.Options{Args: args, Dir: dataDir})
	c3 := opsClient(t, s3)
	inf, _ := fetchInfo(ctx, c3, "persistence")
	if inf["aof_enabled"] != "1" {
		t.Fatalf("AOF not on after restore: %v", inf["aof_enabled"])
	}
	if !strings.Contains(s3.Log(), "DB loaded from append only file") {
		t.Errorf("final start did not load from the AOF:\n%s", s3.Log())
	}
	after := snapshotAll(t, c3)
	compareSnapshots(t, before, after)
	if r := cli(t, s3.Addr(), nil, "health"); r.code != ExitOK {
		t.Errorf("health after restore: %v", r)
	}
}

func compareSnapshots(t *testing.T, before, after map[string]keyState) {
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
		if a.typ != b.typ || !reflect.DeepEqual(a.value, b.value) {
			t.Errorf("key %q: %s %v, want %s %v", k, a.typ, a.value, b.typ, b.value)
		}
		if (b.ttl < 0) != (a.ttl < 0) || (b.ttl > 0 && (a.ttl > b.ttl || b.ttl-a.ttl > time.Minute)) {
			t.Errorf("key %q: ttl %v, want about %v", k, a.ttl, b.ttl)
		}
	}
}
