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

func TestHelpForEveryCommand(t *testing.T) {
	for name := range commands {
		r := cli(t, "127.0.0.1:1", nil, name, "--help")
		if r.code != ExitOK || !strings.Contains(r.stderr, "Usage: redis-ops "+name) || !strings.Contains(r.stderr, "Exit codes:") {
			t.Errorf("%s --help: %v", name, r)
		}
	}
	secretURL := map[string]string{"REDIS_URL": "redis://ops:" + testPassword + "@127.0.0.1:1/0"}
	if r := cli(t, "127.0.0.1:1", secretURL, "health", "--help"); r.code != ExitOK {
		t.Errorf("--help with REDIS_URL set: %v", r) // cli fails the test if the password shows
	}
	if r := cli(t, "127.0.0.1:1", nil, "nope"); r.code != ExitUsage {
		t.Errorf("unknown command: %v", r)
	}
	if r := cli(t, "127.0.0.1:1", nil, "health", "--bogus"); r.code != ExitUsage {
		t.Errorf("unknown flag: %v", r)
	}
}

func TestHealth(t *testing.T) {
	s := startRedis(t, "--maxmemory", "64mb")
	seed(t, opsClient(t, s))

	r := cli(t, s.Addr(), nil, "health")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "OK redis 7") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("healthy server: %v", r)
	}
	if r := cli(t, s.Addr(), map[string]string{"REDIS_PASSWORD": "wrong-password"}, "health"); r.code != ExitAuth {
		t.Errorf("wrong password: %v", r)
	}
	if r := cli(t, s.Addr(), map[string]string{"REDIS_USERNAME": "default"}, "health"); r.code != ExitAuth {
		t.Errorf("default user (off): %v", r)
	}
	if r := cli(t, s.Addr(), map[string]string{"REDIS_USERNAME": "celery", "REDIS_PASSWORD": "celery-test-pw"}, "health"); r.code != ExitAuth || !strings.Contains(r.stdout, "NOPERM") {
		t.Errorf("celery user cannot run INFO: %v", r)
	}
	if r := cli(t, s.Addr(), nil, "health", "--memory-warn", "0.0001"); r.code != ExitMemory || !strings.HasPrefix(r.stdout, "CRITICAL memory") {
		t.Errorf("memory threshold: %v", r)
	}
}

func TestHealthServerDown(t *testing.T) {
	s := startRedis(t)
	addr := s.Addr()
	s.Stop()
	r := cli(t, addr, nil, "health", "--timeout", "1s")
	if r.code != ExitUnreachable || !strings.HasPrefix(r.stdout, "CRITICAL unreachable") {
		t.Fatalf("server down: %v", r)
	}
}

func TestHealthEvictions(t *testing.T) {
	s := startRedis(t, "--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
	c := opsClient(t, s)
	ctx := context.Background()
	val := strings.Repeat("v", 10_000)
	for i := 0; i < 500; i++ {
		if err := c.Set(ctx, "fill:"+string(rune('a'+i%26))+strings.Repeat("k", i%50)+time.Now().String(), val, 0).Err(); err != nil {
			t.Fatalf("fill: %v", err)
		}
	}
	// Evictions keep memory just below maxmemory (99.8% measured), over any
	// --memory-warn: free it, evicted_keys stays.
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r := cli(t, s.Addr(), nil, "health")
	if r.code != ExitEvictions || !strings.Contains(r.stdout, "evicted") {
		t.Fatalf("evictions: %v", r)
	}
}

func TestHealthPersistenceFailing(t *testing.T) {
	s := startRedis(t, "--enable-protected-configs", "yes")
	c := opsClient(t, s)
	ctx := context.Background()
	gone := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "dir", gone).Err(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	// Let the server save on shutdown again (else SIGTERM is refused).
	t.Cleanup(func() { c.ConfigSet(ctx, "dir", s.Dir()) })
	_ = c.BgSave(ctx).Err()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		inf, err := fetchInfo(ctx, c, "persistence")
		if err == nil && inf["rdb_last_bgsave_status"] == "err" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := cli(t, s.Addr(), nil, "health")
	if r.code != ExitPersistence || !strings.Contains(r.stdout, "rdb_last_bgsave_status:err") {
		t.Fatalf("persistence failing: %v", r)
	}
}

func TestConnectionSources(t *testing.T) {
	s := startRedis(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, s.Addr(), map[string]string{"REDIS_PASSWORD": ""}, "health", "--password-file", pwFile); r.code != ExitOK {
		t.Errorf("--password-file: %v", r)
	}
	if r := cli(t, "127.0.0.1:1", map[string]string{"REDIS_PASSWORD": "", "REDIS_PASSWORD_FILE": pwFile, "REDIS_URL": "redis://ops@" + s.Addr() + "/0"}, "health"); r.code != ExitOK {
		t.Errorf("REDIS_URL + REDIS_PASSWORD_FILE: %v", r)
	}
	if r := cli(t, "127.0.0.1:1", map[string]string{"REDIS_PASSWORD": ""}, "health", "--url", "redis://ops:"+testPassword+"@"+s.Addr()+"/0"); r.code != ExitOK {
		t.Errorf("--url with credentials: %v", r)
	}
	if r := cli(t, s.Addr(), nil, "health", "--password-file", "/nonexistent/pw"); r.code != ExitUsage || !strings.Contains(r.stderr, "--password-file") {
		t.Errorf("missing password file: %v", r)
	}
}

// TestStackOutputs uses a fake pulumi CLI on PATH; not parallel (PATH).
func TestStackOutputs(t *testing.T) {
	s := startRedis(t)
	bin := t.TempDir()
	outputs, _ := json.Marshal(map[string]any{"redisHost": "127.0.0.1", "redisPort": s.Port(), "opsPassword": testPassword})
	outFile := filepath.Join(bin, "outputs.json")
	if err := os.WriteFile(outFile, outputs, 0o600); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\n[ \"$1 $2 $3 $4 $5 $6\" = \"stack output --json --show-secrets --stack dev\" ] || exit 3\ncat " + outFile + "\n"
	if err := os.WriteFile(filepath.Join(bin, "pulumi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	if r := cli(t, "127.0.0.1:1", map[string]string{"REDIS_PASSWORD": ""}, "health", "--stack", "dev"); r.code != ExitOK {
		t.Errorf("--stack dev: %v", r)
	}
	// A stack that publishes Redis on the host (dev): its redisHostAddress wins over the network alias.
	published, _ := json.Marshal(map[string]any{"redisHost": "redis", "redisPort": 6379, "redisHostAddress": s.Addr(), "opsPassword": testPassword})
	if err := os.WriteFile(outFile, published, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, "127.0.0.1:1", map[string]string{"REDIS_PASSWORD": ""}, "health", "--stack", "dev"); r.code != ExitOK {
		t.Errorf("--stack dev with redisHostAddress: %v", r)
	}
	if r := cli(t, "127.0.0.1:1", map[string]string{"REDIS_PASSWORD": ""}, "health", "--stack", "prod"); r.code != ExitError || !strings.Contains(r.stdout+r.stderr, "pulumi stack output --stack prod") {
		t.Errorf("--stack prod (pulumi fails): %v", r)
	}
	t.Setenv("PATH", t.TempDir())
	if r := cli(t, "127.0.0.1:1", nil, "health", "--stack", "dev"); r.code == ExitOK || !strings.Contains(r.stdout+r.stderr, "needs the pulumi CLI") {
		t.Errorf("pulumi missing: %v", r)
	}
}

func TestMonitor(t *testing.T) {
	s := startRedis(t, "--maxmemory", "64mb")
	seed(t, opsClient(t, s))

	r := cli(t, s.Addr(), nil, "monitor", "--count", "2", "--interval", "50ms")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != ExitOK || len(lines) != 2 {
		t.Fatalf("plain monitor: %v", r)
	}
	for _, want := range []string{"mem=", "clients=", "ops/s=", "keys=20", "evicted=0", "rdb=ok", "aof=ok", "celery=4", "emails=1", "unacked=1"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("monitor line lacks %q: %s", want, lines[0])
		}
	}
	r = cliCtx(context.Background(), t, s.Addr(), nil, true, "monitor", "--count", "1")
	if r.code != ExitOK || !strings.Contains(r.stdout, "\033[H\033[2J") || !strings.Contains(r.stdout, "Celery     celery=4 emails=1") {
		t.Fatalf("terminal monitor: %v", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- cliCtx(ctx, t, s.Addr(), nil, false, "monitor", "--interval", "20ms") }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case r := <-done:
		if r.code != ExitOK || !strings.Contains(r.stdout, "keys=20") {
			t.Fatalf("monitor after cancel: %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("monitor did not stop on context cancel (Ctrl-C)")
	}
}

func TestSlowlogAndStats(t *testing.T) {
	s := startRedis(t)
	c := opsClient(t, s)
	ctx := context.Background()
	if err := c.ConfigSet(ctx, "slowlog-log-slower-than", "0").Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		c.Get(ctx, "missing")
	}
	c.Set(ctx, "slow key with spaces", "v", 0)
	r := cli(t, s.Addr(), nil, "slowlog", "--count", "3")
	if r.code != ExitOK || !strings.Contains(r.stdout, `"slow key with spaces"`) || strings.Count(r.stdout, "\n") != 4 {
		t.Fatalf("slowlog: %v", r)
	}
	r = cli(t, s.Addr(), nil, "stats")
	get, set := strings.Index(r.stdout, "\nget "), strings.Index(r.stdout, "\nset ")
	if r.code != ExitOK || !strings.Contains(r.stdout, "USEC_PER_CALL") || get < 0 || set < 0 || get > set {
		t.Fatalf("stats (get, called 10x, must precede set): %v", r)
	}
	r = cli(t, s.Addr(), nil, "stats", "--top", "1")
	if strings.Count(strings.TrimSpace(r.stdout), "\n") != 1 {
		t.Fatalf("stats --top 1: %v", r)
	}
}

func TestAnalyze(t *testing.T) {
	s := startRedis(t)
	n := seed(t, opsClient(t, s))
	r := cli(t, s.Addr(), nil, "analyze", "--json", "--top", "3", "--batch", "4", "--progress")
	if r.code != ExitOK {
		t.Fatalf("analyze: %v", r)
	}
	var a analysis
	if err := json.Unmarshal([]byte(r.stdout), &a); err != nil {
		t.Fatalf("analyze json: %v\n%s", err, r)
	}
	if a.Scanned != int64(n) {
		t.Errorf("scanned %d keys, want %d", a.Scanned, n)
	}
	want := map[string]int64{"string": 8, "hash": 2, "list": 4, "set": 3, "zset": 2, "stream": 1}
	for typ, keys := range want {
		if a.ByType[typ] == nil || a.ByType[typ].Keys != keys || a.ByType[typ].Bytes <= 0 {
			t.Errorf("type %s: %+v, want %d keys", typ, a.ByType[typ], keys)
		}
	}
	if len(a.Largest) != 3 || a.Largest[0].Key != "str:big" || a.Largest[0].Bytes < 200_000 {
		t.Errorf("largest: %+v", a.Largest)
	}
	if a.WithTTL != 7 || a.WithoutTTL != 13 || a.CeleryResults != 5 {
		t.Errorf("ttl %d/%d results %d, want 7/13/5", a.WithTTL, a.WithoutTTL, a.CeleryResults)
	}
	if a.Celery.Queues["celery"] != 4 || a.Celery.Queues["emails"] != 1 || a.Celery.Unacked != 1 {
		t.Errorf("celery: %+v", a.Celery)
	}
	if !strings.Contains(r.stderr, "scanning") {
		t.Errorf("no progress on stderr with --progress: %s", r.stderr)
	}
	text := cli(t, s.Addr(), nil, "analyze")
	for _, w := range []string{"LARGEST KEYS", "str:big", "Evictions:", "Celery queues: celery=4 emails=1"} {
		if !strings.Contains(text.stdout, w) {
			t.Errorf("analyze text lacks %q: %v", w, text)
		}
	}
}

func TestSizeHeapKeepsTopN(t *testing.T) {
	h := &sizeHeap{}
	for i := int64(0); i < 10_000; i++ {
		h.offer(keySize{Key: "k", Bytes: (i * 7919) % 10_000}, 5)
		if h.Len() > 5 {
			t.Fatalf("heap grew to %d", h.Len())
		}
	}
	got := h.sorted()
	for i, want := range []int64{9999, 9998, 9997, 9996, 9995} {
		if got[i].Bytes != want {
			t.Fatalf("top = %+v", got)
		}
	}
}
