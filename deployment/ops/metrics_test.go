package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// scrape GETs url and returns the samples: "name{labels}" -> value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	samples := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	if strings.Contains(string(b), testPassword) {
		t.Fatal("metrics show the password")
	}
	return samples
}

func need(t *testing.T, s map[string]float64, series string) float64 {
	t.Helper()
	v, ok := s[series]
	if !ok {
		t.Fatalf("series %s missing", series)
	}
	return v
}

// metricsServer serves the metrics handler for a server at addr.
func metricsServer(t *testing.T, addr, backupDir string, refresh time.Duration) string {
	t.Helper()
	vars := map[string]string{"REDIS_ADDR": addr, "REDIS_PASSWORD": testPassword}
	e := &env{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string { return vars[k] },
		isTerminal: func(io.Writer) bool { return false }, now: time.Now}
	fs := e.newFlagSet("metrics", "", "")
	c := e.addConnFlags(fs)
	c.markSet(fs)
	srv := httptest.NewServer(newMetricsHandler(e, c, metricsOptions{backupDir: backupDir, queues: []string{"celery"},
		queueRefresh: refresh, scrapeTimeout: 5 * time.Second}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestMetricsFollowRedis scrapes /metrics from a real redis-server: the
// expected series exist, and they change when keys are added, a queue grows,
// a backup is written and Redis goes away.
func TestMetricsFollowRedis(t *testing.T) {
	s := startRedis(t, "--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru")
	client := opsClient(t, s)
	seed(t, client)
	dir := t.TempDir()
	url := metricsServer(t, s.Addr(), dir, 0)

	m1 := scrape(t, url+"/metrics")
	want := map[string]float64{
		"redis_up": 1, "redis_loading": 0, "redis_memory_max_bytes": 64 << 20,
		`redis_keys{db="db0"}`: 20, `redis_celery_queue_length{queue="celery"}`: 4, `redis_celery_queue_length{queue="emails"}`: 1,
		"redis_celery_unacked": 1, "redis_celery_unacked_index": 1, "redis_evicted_keys_total": 0, "redis_rejected_connections_total": 0,
		"redis_rdb_last_bgsave_ok": 1, "redis_aof_enabled": 1, "redis_aof_last_write_ok": 1, "redis_aof_last_bgrewrite_ok": 1,
		"redis_backups": 0,
	}
	for series, v := range want {
		if got := need(t, m1, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	for _, series := range []string{"redis_memory_used_bytes", "redis_memory_used_ratio", "redis_connected_clients",
		"redis_instantaneous_ops_per_sec", "redis_commands_processed_total", "redis_rdb_seconds_since_last_save",
		"redis_rdb_last_save_timestamp_seconds", "redis_uptime_seconds", "redis_scrape_duration_seconds", "process_resident_memory_bytes"} {
		need(t, m1, series)
	}
	if _, ok := m1["redis_backup_last_success_age_seconds"]; ok {
		t.Error("backup age reported with no backup")
	}
	// Standalone: the one node is a primary without replicas, and no Sentinel series.
	node := fmt.Sprintf("{node=%q}", s.Addr())
	for series, v := range map[string]float64{"redis_node_up" + node: 1, "redis_replication_primary" + node: 1,
		`redis_celery_queue_undrained_seconds{queue="celery"}`: 0} {
		if got := need(t, m1, series); got != v {
			t.Errorf("%s = %v, want %v", series, got, v)
		}
	}
	if age := need(t, m1, "redis_celery_unacked_oldest_age_seconds"); age < 0 || age > 30 {
		t.Errorf("oldest in-flight age %v, want the seconds since seed", age)
	}
	for k := range m1 {
		if strings.HasPrefix(k, "redis_sentinel_") || strings.HasPrefix(k, "redis_replication_replica_lag_seconds") {
			t.Errorf("%s served without Sentinels or replicas", k)
		}
	}

	// Redis changes: 2000 keys of 1000 bytes, the celery queue grows by 5, a new queue is bound.
	ctx := context.Background()
	p := client.Pipeline()
	for i := 0; i < 2000; i++ {
		p.Set(ctx, fmt.Sprintf("added:%d", i), strings.Repeat("v", 1000), 0) // ~2 MB: well above the client buffers' swing
	}
	for i := 0; i < 5; i++ {
		p.LPush(ctx, "celery", fmt.Sprintf(`{"body":"more%d"}`, i))
	}
	p.SAdd(ctx, "_kombu.binding.reports", "reports"+kombuSep+kombuSep+"reports")
	p.RPush(ctx, "reports", "r1", "r2")
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, s.Addr(), nil, "backup", "--dir", dir); r.code != ExitOK {
		t.Fatalf("backup: %v", r)
	}
	m2 := scrape(t, url+"/metrics")
	if got := need(t, m2, `redis_keys{db="db0"}`); got != 20+2000+2 { // + the reports queue and its binding
		t.Errorf("keys after adding = %v", got)
	}
	if got := need(t, m2, `redis_celery_queue_length{queue="celery"}`); got != 9 {
		t.Errorf("celery queue after growing = %v, want 9", got)
	}
	if got := need(t, m2, `redis_celery_queue_length{queue="reports"}`); got != 2 {
		t.Errorf("new queue = %v, want 2", got)
	}
	if m2["redis_memory_used_bytes"] <= m1["redis_memory_used_bytes"]+100_000 {
		t.Errorf("memory did not grow: %v -> %v", m1["redis_memory_used_bytes"], m2["redis_memory_used_bytes"])
	}
	if m2["redis_commands_processed_total"] <= m1["redis_commands_processed_total"] {
		t.Error("commands processed did not grow")
	}
	// The celery queue grew: no sign of a consumer since the first scrape.
	if u := need(t, m2, `redis_celery_queue_undrained_seconds{queue="celery"}`); u <= 0 {
		t.Errorf("celery queue grew, undrained %v, want > 0", u)
	}
	if err := client.RPop(ctx, "celery").Err(); err != nil {
		t.Fatal(err)
	}
	if u := need(t, scrape(t, url+"/metrics"), `redis_celery_queue_undrained_seconds{queue="celery"}`); u != 0 {
		t.Errorf("after a task was taken, undrained %v, want 0", u)
	}
	if age := need(t, m2, "redis_backup_last_success_age_seconds"); age < 0 || age > 30 {
		t.Errorf("backup age %v", age)
	}
	if need(t, m2, "redis_backups") != 1 || m2["redis_rdb_seconds_since_last_save"] > 30 {
		t.Errorf("after backup: backups %v, since save %v", m2["redis_backups"], m2["redis_rdb_seconds_since_last_save"])
	}

	// Redis gone: redis_up 0, still HTTP 200, backup age still served.
	s.Stop()
	m3 := scrape(t, url+"/metrics")
	if need(t, m3, "redis_up") != 0 {
		t.Error("redis_up should be 0")
	}
	if _, ok := m3["redis_memory_used_bytes"]; ok {
		t.Error("memory reported while Redis is down")
	}
	need(t, m3, "redis_backup_last_success_age_seconds")
	resp, err := http.Get(url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestMetricsPersistenceFailure: a failing BGSAVE shows as
// redis_rdb_last_bgsave_ok 0 (Redis refuses writes then).
func TestMetricsPersistenceFailure(t *testing.T) {
	s := startRedis(t)
	client := opsClient(t, s)
	ctx := context.Background()
	client.Set(ctx, "k", "v", 0)
	// A non-empty directory named dump.rdb makes the save's final rename fail
	// (even for root, unlike file permissions).
	if err := os.MkdirAll(filepath.Join(s.Dir(), "dump.rdb", "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Unblock before the harness stops Redis, which saves on shutdown.
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Join(s.Dir(), "dump.rdb")) })
	if err := client.BgSave(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	url := metricsServer(t, s.Addr(), "", 0)
	waitFor(t, 10*time.Second, "BGSAVE to fail", func() bool { return scrape(t, url+"/metrics")["redis_rdb_last_bgsave_ok"] == 0 })
	if m := scrape(t, url+"/metrics"); m["redis_up"] != 1 {
		t.Errorf("redis_up = %v while saving fails (Redis still answers)", m["redis_up"])
	}
}

// TestMetricsCommandAndHealthz runs the metrics command itself and checks it
// with "redis-ops healthz", then stops it like SIGTERM.
func TestMetricsCommandAndHealthz(t *testing.T) {
	s := startRedis(t)
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	bg := startCmd(t, s.Addr(), nil, "metrics", "--listen", addr, "--backup-dir", t.TempDir())
	waitFor(t, 10*time.Second, "the metrics server", func() bool {
		return cli(t, "", nil, "healthz", "--url", "http://"+addr+"/healthz").code == ExitOK
	})
	if m := scrape(t, "http://"+addr+"/metrics"); m["redis_up"] != 1 {
		t.Errorf("redis_up = %v", m["redis_up"])
	}
	r := bg.stop()
	if r.code != ExitOK || !strings.Contains(r.stderr, "stopping") {
		t.Fatalf("metrics: %v", r)
	}
	if r := cli(t, "", nil, "healthz", "--url", "http://"+addr+"/healthz", "--timeout", "1s"); r.code != ExitUnreachable {
		t.Errorf("healthz on a stopped server: %v", r)
	}
	if r := cli(t, "", nil, "metrics", "--listen", "127.0.0.1:1", "--scrape-timeout", "0s"); r.code != ExitUsage {
		t.Errorf("bad --scrape-timeout: %v", r)
	}
}

// TestUndrained pins the no-consumer proxy: a queue counts from when it is first seen, and the count
// restarts whenever it is empty or shorter than at the previous reading.
func TestUndrained(t *testing.T) {
	rc := &redisCollector{}
	t0 := time.Unix(1_700_000_000, 0)
	for i, step := range []struct {
		at   time.Duration
		n    int64
		want time.Duration
	}{
		{0, 5, 0},                             // first seen: counts from now
		{time.Minute, 5, time.Minute},         // unchanged
		{2 * time.Minute, 9, 2 * time.Minute}, // grew: still no sign of a consumer
		{3 * time.Minute, 8, 0},               // shrank: something took one
		{4 * time.Minute, 8, time.Minute},     // unchanged again
		{5 * time.Minute, 0, 0},               // empty
		{6 * time.Minute, 3, time.Minute},     // tasks since the empty reading
	} {
		if got := rc.undrained("q", step.n, t0.Add(step.at)); got != step.want {
			t.Errorf("step %d (len %d at %v): undrained %v, want %v", i, step.n, step.at, got, step.want)
		}
	}
}

// TestAgreedPrimaryAndLags: the primary most Sentinels name wins; INFO's online replicas and lags.
func TestAgreedPrimaryAndLags(t *testing.T) {
	primary, replicas, err := agreedPrimary([]sentinelReport{
		{addr: "s1", primary: "redis-0:6379", replicas: []string{"redis-1:6379", "redis-2:6379"}},
		{addr: "s2", primary: "redis-1:6379", replicas: []string{"redis-0:6379"}},
		{addr: "s3", primary: "redis-1:6379", replicas: []string{"redis-0:6379", "redis-2:6379"}},
		{addr: "s4", err: errors.New("down")},
	}, "emailclient")
	if err != nil || primary != "redis-1:6379" || !slices.Equal(replicas, []string{"redis-0:6379", "redis-2:6379"}) {
		t.Errorf("agreedPrimary = %q %q %v, want redis-1:6379 [redis-0:6379 redis-2:6379]", primary, replicas, err)
	}
	if _, _, err := agreedPrimary([]sentinelReport{{addr: "s1", err: errors.New("refused")}}, "emailclient"); exitCode(err) != ExitTopology {
		t.Errorf("no primary named: %v (exit %d), want exit %d", err, exitCode(err), ExitTopology)
	}
	lags := replicaLags(info{"connected_slaves": "3",
		"slave0": "ip=redis-1,port=6379,state=online,offset=10,lag=0",
		"slave1": "ip=redis-2,port=6379,state=wait_bgsave,offset=0,lag=7",
		"slave2": "ip=10.0.0.3,port=6380,state=online,offset=9,lag=12"})
	if len(lags) != 2 || lags["redis-1:6379"] != 0 || lags["10.0.0.3:6380"] != 12 {
		t.Errorf("replicaLags = %v, want the two online replicas", lags)
	}
}
