package ops

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// metricsOptions configures runMetrics.
type metricsOptions struct {
	listen        string
	backupDir     string
	queues        []string
	queueRefresh  time.Duration
	scrapeTimeout time.Duration
	// sentinels, when set, make the exporter follow the primary they name (see sentinelFlags).
	sentinels *sentinelFlags
}

func runMetrics(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("metrics", "[--listen :9121] [--backup-dir DIR] [flags]", `
Serves Prometheus metrics on /metrics (and 200 "ok" on /healthz) until SIGTERM
or SIGINT (exit 0). Redis is read on every scrape (INFO, the Celery queue
lengths, HLEN unacked and the oldest entry of unacked_index, in at most
--scrape-timeout), so values follow Redis; when Redis cannot be read, redis_up
is 0 and only the backup, Sentinel and scrape series are served.

With --sentinels (env REDIS_SENTINELS) the exporter follows the topology: on
every scrape it asks each Sentinel for the primary of --master-name, its
quorum (CKQUORUM), config epoch and replicas, reads the queue, memory and
persistence series from the primary most Sentinels name (so after a failover
from the new one), and reads INFO replication on every data node for its role
and link; --addr is not used then. The connection (and password file) is resolved on every scrape, so
a rotated password is picked up without a restart.

Series: redis_up, redis_loading, redis_uptime_seconds, redis_memory_used_bytes,
redis_memory_max_bytes (0 = no limit), redis_memory_used_ratio (only with a
limit), redis_connected_clients, redis_blocked_clients,
redis_instantaneous_ops_per_sec, redis_commands_processed_total,
redis_evicted_keys_total, redis_expired_keys_total,
redis_rejected_connections_total, redis_keys{db},
redis_rdb_last_bgsave_ok, redis_rdb_bgsave_in_progress,
redis_rdb_last_save_timestamp_seconds, redis_rdb_seconds_since_last_save,
redis_rdb_changes_since_last_save, redis_aof_enabled, redis_aof_last_write_ok,
redis_aof_last_bgrewrite_ok, redis_node_up{node},
redis_replication_primary{node}, redis_replication_link_up{node} (replicas),
redis_replication_replica_lag_seconds{replica} (on the primary, per online
replica), redis_sentinel_up{sentinel},
redis_sentinel_primary_info{sentinel,master_name,primary},
redis_sentinel_quorum_ok{sentinel,master_name},
redis_sentinel_config_epoch{sentinel,master_name} (with --sentinels),
redis_celery_queue_length{queue}, redis_celery_queue_undrained_seconds{queue},
redis_celery_unacked, redis_celery_unacked_index,
redis_celery_unacked_oldest_age_seconds,
redis_backup_last_success_timestamp_seconds and
redis_backup_last_success_age_seconds (with --backup-dir, absent until a
backup exists), redis_backups (with --backup-dir),
redis_backup_remote_upload_failing (with --backup-dir: 1 while the newest upload
to the remote copy failed, DIR/remote-upload-failing),
redis_backup_remote_last_success_timestamp_seconds and _age_seconds (with
--backup-dir, once an upload succeeded), redis_scrape_duration_seconds,
plus the process_* series of this exporter.

Celery queues are --queues plus the queues named in _kombu.binding.* sets,
found with SCAN at the first scrape and again every --queue-refresh.`)
	c := e.addConnFlags(fs)
	o := metricsOptions{sentinels: e.addSentinelFlags(fs)}
	fs.StringVar(&o.listen, "listen", ":9121", "HTTP listen address")
	fs.StringVar(&o.backupDir, "backup-dir", "", "backup directory (read-only is fine) for the last backup's age: DIR/last-success and the manifests")
	queues := fs.String("queues", "celery", "comma-separated Celery queues always reported")
	fs.DurationVar(&o.queueRefresh, "queue-refresh", 5*time.Minute, "how often to re-discover queues from _kombu.binding.* (SCAN); 0 = every scrape")
	fs.DurationVar(&o.scrapeTimeout, "scrape-timeout", 8*time.Second, "upper bound of one scrape's Redis work (keep it below Prometheus' scrape_timeout)")
	if err := parse(fs, args); err != nil {
		return err
	}
	c.markSet(fs)
	if _, err := c.options(ctx, e); err != nil && exitCode(err) == ExitUsage {
		return err
	}
	if _, err := o.sentinels.list(); err != nil {
		return err
	}
	for _, q := range strings.Split(*queues, ",") {
		if q = strings.TrimSpace(q); q != "" {
			o.queues = append(o.queues, q)
		}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	srv := &http.Server{Handler: newMetricsHandler(e, c, o), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(e.stderr, "redis-ops metrics: serving /metrics and /healthz on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	fmt.Fprintln(e.stderr, "redis-ops metrics: stopping")
	return nil
}

// newMetricsHandler returns the HTTP handler: /metrics, /healthz and an index.
func newMetricsHandler(e *env, c *connFlags, o metricsOptions) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newRedisCollector(e, c, o))
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("redis-ops metrics: /metrics /healthz\n"))
	})
	return mux
}

// redisCollector reads Redis on every Collect.
type redisCollector struct {
	e *env
	c *connFlags
	o metricsOptions

	mu           sync.Mutex // one scrape at a time; guards the fields below and c
	discovered   []string
	discoveredAt time.Time
	lastErr      string
	// queueSeen is, per queue, its length at the previous reading and when it was last seen empty or
	// shorter than at the reading before (evidence that something takes from it).
	queueSeen map[string]queueSeen
}

type queueSeen struct {
	length    int64
	drainedAt time.Time
}

func newRedisCollector(e *env, c *connFlags, o metricsOptions) *redisCollector {
	return &redisCollector{e: e, c: c, o: o}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// infoGauges are INFO fields exported as they are.
var infoGauges = []struct {
	field string
	desc  *prometheus.Desc
	kind  prometheus.ValueType
}{
	{"uptime_in_seconds", desc("redis_uptime_seconds", "Seconds since Redis started."), prometheus.GaugeValue},
	{"used_memory", desc("redis_memory_used_bytes", "Memory used by Redis (INFO used_memory)."), prometheus.GaugeValue},
	{"maxmemory", desc("redis_memory_max_bytes", "The maxmemory limit; 0 means no limit."), prometheus.GaugeValue},
	{"connected_clients", desc("redis_connected_clients", "Connected clients."), prometheus.GaugeValue},
	{"blocked_clients", desc("redis_blocked_clients", "Clients blocked in BLPOP and similar (idle Celery workers)."), prometheus.GaugeValue},
	{"instantaneous_ops_per_sec", desc("redis_instantaneous_ops_per_sec", "Commands per second (INFO instantaneous_ops_per_sec)."), prometheus.GaugeValue},
	{"total_commands_processed", desc("redis_commands_processed_total", "Commands processed since start."), prometheus.CounterValue},
	{"evicted_keys", desc("redis_evicted_keys_total", "Keys evicted by the maxmemory policy since start (Celery messages may be lost)."), prometheus.CounterValue},
	{"expired_keys", desc("redis_expired_keys_total", "Keys expired since start."), prometheus.CounterValue},
	{"rejected_connections", desc("redis_rejected_connections_total", "Connections rejected because of maxclients since start."), prometheus.CounterValue},
	{"rdb_bgsave_in_progress", desc("redis_rdb_bgsave_in_progress", "1 while a BGSAVE runs."), prometheus.GaugeValue},
	{"rdb_last_save_time", desc("redis_rdb_last_save_timestamp_seconds", "Unix time of the last successful RDB save."), prometheus.GaugeValue},
	{"rdb_changes_since_last_save", desc("redis_rdb_changes_since_last_save", "Writes since the last successful RDB save."), prometheus.GaugeValue},
	{"aof_enabled", desc("redis_aof_enabled", "1 when appendonly is on."), prometheus.GaugeValue},
}

var (
	descUp          = desc("redis_up", "1 when Redis answered INFO in this scrape, else 0.")
	descLoading     = desc("redis_loading", "1 while Redis loads its data set.")
	descMemRatio    = desc("redis_memory_used_ratio", "used_memory / maxmemory (absent without a limit).")
	descKeys        = desc("redis_keys", "Keys per database.", "db")
	descBgsaveOK    = desc("redis_rdb_last_bgsave_ok", "1 when the last BGSAVE succeeded (rdb_last_bgsave_status:ok), else 0: Redis refuses writes.")
	descSinceSave   = desc("redis_rdb_seconds_since_last_save", "Seconds since the last successful RDB save (now - rdb_last_save_time).")
	descAOFWriteOK  = desc("redis_aof_last_write_ok", "1 when the last AOF write succeeded (aof_last_write_status:ok), else 0.")
	descAOFRewrite  = desc("redis_aof_last_bgrewrite_ok", "1 when the last AOF rewrite succeeded, else 0.")
	descQueue       = desc("redis_celery_queue_length", "Messages waiting in a Celery queue (kombu priority sub-queues summed).", "queue")
	descUndrained   = desc("redis_celery_queue_undrained_seconds", "Seconds the queue has held messages without once being read shorter than at this exporter's previous reading (0 while empty); counted from the exporter's start: the proxy for no consumer.", "queue")
	descOldest      = desc("redis_celery_unacked_oldest_age_seconds", "Seconds since the oldest message in flight was delivered (now minus the lowest score of unacked_index); 0 when none is.")
	descNodeUp      = desc("redis_node_up", "1 when the data node answered INFO in this scrape, else 0.", "node")
	descPrimary     = desc("redis_replication_primary", "1 when the data node's role is master, 0 on a replica.", "node")
	descLinkUp      = desc("redis_replication_link_up", "On a replica: 1 when its link to its primary is up (master_link_status:up).", "node")
	descReplicaLag  = desc("redis_replication_replica_lag_seconds", "On the primary, per online replica: seconds since its last acknowledgement (INFO slaveN lag).", "replica")
	descSentinelUp  = desc("redis_sentinel_up", "1 when the Sentinel answered in this scrape, else 0.", "sentinel")
	descSentinelPri = desc("redis_sentinel_primary_info", "1, with the primary the Sentinel names for master_name (GET-MASTER-ADDR-BY-NAME).", "sentinel", "master_name", "primary")
	descQuorumOK    = desc("redis_sentinel_quorum_ok", "1 when SENTINEL CKQUORUM succeeds on that Sentinel, else 0.", "sentinel", "master_name")
	descEpoch       = desc("redis_sentinel_config_epoch", "The Sentinel's config-epoch of master_name (one more per failover).", "sentinel", "master_name")
	descUnacked     = desc("redis_celery_unacked", "Messages delivered to a worker and not yet acknowledged (HLEN unacked).")
	descUnackedIdx  = desc("redis_celery_unacked_index", "Entries in the unacked_index sorted set (ZCARD).")
	descBackupTime  = desc("redis_backup_last_success_timestamp_seconds", "Unix time of the newest good backup in --backup-dir.")
	descBackupAge   = desc("redis_backup_last_success_age_seconds", "Seconds since the newest good backup in --backup-dir.")
	descBackups     = desc("redis_backups", "Backups (redis-backup-*.rdb) in --backup-dir.")
	descRemoteFail  = desc("redis_backup_remote_upload_failing", "1 while the newest upload of a backup to the remote copy failed (the local backup is kept), else 0.")
	descRemoteTime  = desc("redis_backup_remote_last_success_timestamp_seconds", "Unix time of the newest good upload to the remote copy.")
	descRemoteAge   = desc("redis_backup_remote_last_success_age_seconds", "Seconds since the newest good upload to the remote copy.")
	descScrapeTime  = desc("redis_scrape_duration_seconds", "Time this scrape spent reading Redis and the backup dir.")
	allCustomDescs  = []*prometheus.Desc{descUp, descLoading, descMemRatio, descKeys, descBgsaveOK, descSinceSave, descAOFWriteOK, descAOFRewrite, descQueue, descUnacked, descUnackedIdx, descUndrained, descOldest, descNodeUp, descPrimary, descLinkUp, descReplicaLag, descSentinelUp, descSentinelPri, descQuorumOK, descEpoch, descBackupTime, descBackupAge, descBackups, descRemoteFail, descRemoteTime, descRemoteAge, descScrapeTime}
	metricsInfoSecs = []string{"server", "clients", "memory", "persistence", "stats", "keyspace", "replication"}
)

func (rc *redisCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range infoGauges {
		ch <- g.desc
	}
	for _, d := range allCustomDescs {
		ch <- d
	}
}

func (rc *redisCollector) Collect(ch chan<- prometheus.Metric) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), rc.o.scrapeTimeout)
	defer cancel()
	err := rc.collectRedis(ctx, ch)
	up := 1.0
	if err != nil {
		up = 0
		if msg := err.Error(); msg != rc.lastErr { // log changes, not every scrape
			fmt.Fprintf(rc.e.stderr, "redis-ops metrics: scrape: %s\n", oneLine(msg))
			rc.lastErr = msg
		}
	} else if rc.lastErr != "" {
		fmt.Fprintln(rc.e.stderr, "redis-ops metrics: scrape: Redis readable again")
		rc.lastErr = ""
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	if rc.o.backupDir != "" {
		rc.collectBackups(ch)
	}
	ch <- prometheus.MustNewConstMetric(descScrapeTime, prometheus.GaugeValue, time.Since(start).Seconds())
}

// collectRedis sends the Redis series; an error means Redis could not be read.
func (rc *redisCollector) collectRedis(ctx context.Context, ch chan<- prometheus.Metric) error {
	opts, err := rc.c.options(ctx, rc.e)
	if err != nil {
		return err
	}
	replicas, err := rc.followSentinels(ctx, ch, opts)
	if err != nil {
		return err
	}
	client := redis.NewClient(opts)
	defer client.Close()
	// INFO works while Redis loads and when saving fails (MISCONF), unlike PING.
	inf, err := fetchInfo(ctx, client, metricsInfoSecs...)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	rc.collectReplicas(ctx, ch, opts, replicas)
	if err != nil {
		gauge(descNodeUp, 0, opts.Addr)
		return fmt.Errorf("%s as %s: %w", opts.Addr, opts.Username, err)
	}
	gauge(descNodeUp, 1, opts.Addr)
	collectRole(ch, opts.Addr, inf)
	for replica, lag := range replicaLags(inf) {
		gauge(descReplicaLag, lag, replica)
	}
	for _, g := range infoGauges {
		if v, ok := inf[g.field]; ok {
			f, _ := strconv.ParseFloat(v, 64)
			ch <- prometheus.MustNewConstMetric(g.desc, g.kind, f)
		}
	}
	gauge(descLoading, boolFloat(inf["loading"] == "1"))
	if pct, ok := inf.memoryPercent(); ok {
		gauge(descMemRatio, pct/100)
	}
	for db, n := range inf.keyspace() {
		gauge(descKeys, float64(n), db)
	}
	gauge(descBgsaveOK, boolFloat(inf["rdb_last_bgsave_status"] == "ok"))
	if last := inf.int("rdb_last_save_time"); last > 0 {
		gauge(descSinceSave, math.Max(0, float64(rc.e.now().Unix()-last)))
	}
	gauge(descAOFWriteOK, boolFloat(inf["aof_last_write_status"] != "err"))
	gauge(descAOFRewrite, boolFloat(inf["aof_last_bgrewrite_status"] != "err"))
	if inf["loading"] == "1" {
		return nil // queues are not readable yet; Redis itself is up
	}
	queues, err := rc.queues(ctx, client)
	if err != nil {
		return err
	}
	cel, err := fetchCelery(ctx, client, queues)
	if err != nil {
		return err
	}
	now := rc.e.now()
	for q, n := range cel.Queues {
		gauge(descQueue, float64(n), q)
		gauge(descUndrained, rc.undrained(q, n, now).Seconds(), q)
	}
	gauge(descUnacked, float64(cel.Unacked))
	gauge(descUnackedIdx, float64(cel.UnackedIndex))
	oldest, err := client.ZRangeWithScores(ctx, "unacked_index", 0, 0).Result()
	if err != nil && !isWrongType(err) {
		return fmt.Errorf("ZRANGE unacked_index 0 0: %w", err)
	}
	age := 0.0
	if len(oldest) == 1 {
		age = math.Max(0, float64(now.UnixNano())/1e9-oldest[0].Score)
	}
	gauge(descOldest, age)
	return nil
}

// undrained records queue q's length n and returns how long it has held messages without once being
// read shorter than at the previous reading. Redis keeps no per-queue record of who takes from a
// list (BRPOP leaves no trace, and the monitor user may read no message), so a queue that has
// tasks and never shrinks is the sign that nothing consumes it. A queue first seen now counts
// from now, so a restarted exporter never reports an old stall.
func (rc *redisCollector) undrained(q string, n int64, now time.Time) time.Duration {
	if rc.queueSeen == nil {
		rc.queueSeen = map[string]queueSeen{}
	}
	prev, seen := rc.queueSeen[q]
	if !seen || n == 0 || n < prev.length {
		prev.drainedAt = now
	}
	rc.queueSeen[q] = queueSeen{length: n, drainedAt: prev.drainedAt}
	if n == 0 {
		return 0
	}
	return now.Sub(prev.drainedAt)
}

// followSentinels, with --sentinels, sends the Sentinel series, points opts at the primary the
// Sentinels agree on and returns the replicas they know; without, it does nothing.
func (rc *redisCollector) followSentinels(ctx context.Context, ch chan<- prometheus.Metric, opts *redis.Options) ([]string, error) {
	sf := rc.o.sentinels
	if sf == nil {
		return nil, nil
	}
	addrs, err := sf.list()
	if err != nil || len(addrs) == 0 {
		return nil, err
	}
	pw, err := sf.password(rc.e)
	if err != nil {
		return nil, err
	}
	reports := querySentinels(ctx, addrs, sf.master, pw, opts.ReadTimeout)
	for _, r := range reports {
		ch <- prometheus.MustNewConstMetric(descSentinelUp, prometheus.GaugeValue, boolFloat(r.up), r.addr)
		ch <- prometheus.MustNewConstMetric(descQuorumOK, prometheus.GaugeValue, boolFloat(r.quorumOK), r.addr, sf.master)
		if r.primary != "" {
			ch <- prometheus.MustNewConstMetric(descSentinelPri, prometheus.GaugeValue, 1, r.addr, sf.master, r.primary)
		}
		if r.epoch >= 0 {
			ch <- prometheus.MustNewConstMetric(descEpoch, prometheus.GaugeValue, float64(r.epoch), r.addr, sf.master)
		}
	}
	primary, replicas, err := agreedPrimary(reports, sf.master)
	if err != nil {
		return nil, err
	}
	opts.Addr = primary
	return replicas, nil
}

// collectReplicas sends each replica's up, role and link series (INFO replication, concurrently).
func (rc *redisCollector) collectReplicas(ctx context.Context, ch chan<- prometheus.Metric, opts *redis.Options, replicas []string) {
	infos := make([]info, len(replicas))
	var wg sync.WaitGroup
	for i, addr := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := *opts
			o.Addr = addr
			c := redis.NewClient(&o)
			defer c.Close()
			infos[i], _ = fetchInfo(ctx, c, "replication")
		}()
	}
	wg.Wait()
	for i, addr := range replicas {
		ch <- prometheus.MustNewConstMetric(descNodeUp, prometheus.GaugeValue, boolFloat(infos[i] != nil), addr)
		if infos[i] != nil {
			collectRole(ch, addr, infos[i])
		}
	}
}

// collectRole sends a data node's role and, on a replica, its link.
func collectRole(ch chan<- prometheus.Metric, node string, inf info) {
	ch <- prometheus.MustNewConstMetric(descPrimary, prometheus.GaugeValue, boolFloat(inf["role"] == "master"), node)
	if inf["role"] == "slave" {
		ch <- prometheus.MustNewConstMetric(descLinkUp, prometheus.GaugeValue, boolFloat(inf["master_link_status"] == "up"), node)
	}
}

// queues returns the configured plus discovered queues, re-discovering them
// every --queue-refresh.
func (rc *redisCollector) queues(ctx context.Context, c *redis.Client) ([]string, error) {
	if rc.discovered == nil || time.Since(rc.discoveredAt) >= rc.o.queueRefresh {
		names, err := discoverQueues(ctx, c, rc.o.queues)
		if err != nil {
			return nil, err
		}
		rc.discovered, rc.discoveredAt = names, time.Now()
	}
	return rc.discovered, nil
}

// collectBackups sends the age of the newest good backup: the later of
// DIR/last-success and the newest manifest's created_at.
func (rc *redisCollector) collectBackups(ch chan<- prometheus.Metric) {
	var newest time.Time
	if t, err := readLastSuccess(rc.o.backupDir); err == nil {
		newest = t
	}
	entries, err := findBackups(rc.o.backupDir)
	if err == nil {
		ch <- prometheus.MustNewConstMetric(descBackups, prometheus.GaugeValue, float64(len(entries)))
	}
	_, err = os.Stat(filepath.Join(rc.o.backupDir, remoteFailingFile))
	ch <- prometheus.MustNewConstMetric(descRemoteFail, prometheus.GaugeValue, boolFloat(err == nil))
	if t, err := readStamp(rc.o.backupDir, lastRemoteSuccessFile); err == nil {
		ch <- prometheus.MustNewConstMetric(descRemoteTime, prometheus.GaugeValue, float64(t.UnixNano())/1e9)
		ch <- prometheus.MustNewConstMetric(descRemoteAge, prometheus.GaugeValue, math.Max(0, rc.e.now().Sub(t).Seconds()))
	}
	for _, be := range entries {
		if be.manifest != nil && be.manifest.CreatedAt.After(newest) {
			newest = be.manifest.CreatedAt
		}
	}
	if newest.IsZero() {
		return // absent: alert with absent(redis_backup_last_success_timestamp_seconds)
	}
	ch <- prometheus.MustNewConstMetric(descBackupTime, prometheus.GaugeValue, float64(newest.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(descBackupAge, prometheus.GaugeValue, math.Max(0, rc.e.now().Sub(newest).Seconds()))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// runHealthz is the healthcheck of the metrics container (scratch has no
// curl): GET the URL, exit 0 on 200.
func runHealthz(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("healthz", "[--url http://127.0.0.1:9121/healthz] [--timeout 3s]", `
GETs the URL (default: the metrics server's /healthz) and exits 0 when it
answers 200, 3 when it cannot be reached, 1 on any other status. For the
HEALTHCHECK of the metrics container, whose scratch image has no curl.`)
	url := fs.String("url", "http://127.0.0.1:9121/healthz", "URL to GET")
	timeout := fs.Duration("timeout", 3*time.Second, "request timeout")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return withCode(ExitUsage, fmt.Errorf("--url: %w", err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return withCode(ExitUnreachable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", *url, resp.Status)
	}
	fmt.Fprintf(e.stdout, "OK %s\n", *url)
	return nil
}
