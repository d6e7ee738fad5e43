package realredis_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/deployment/ops"
	"github.com/emailclient/emailclient-infra/tests/realredis"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// scrapeSeries GETs /metrics and returns "name{labels}" -> value.
func scrapeSeries(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

// TestMetricsAndBackupsFollowTheSentinelTopology runs the exporter and a backup with the env the
// program declares for the metrics and backup containers against a real Sentinel topology: every
// data node's role, link and lag and every Sentinel's primary, quorum and epoch are served; the queue
// figures come from the primary; backups are copied from an in-sync replica. Then the primary is
// killed: after the failover the queue figures come from the new primary (tasks queued there after
// the failover are counted), the old primary is reported down, the epoch has grown, and the backup
// still comes from a replica.
func TestMetricsAndBackupsFollowTheSentinelTopology(t *testing.T) {
	const topology = `{"mode":"sentinel","downAfterMilliseconds":2000,"failoverTimeoutMilliseconds":20000}`
	top := realredis.StartSentinel(t, "dev", topology)
	opsConfig := map[string]string{"operations": `{"build":"prebuilt","backup":{"enabled":true},"metrics":{"enabled":true}}`}
	env := top.OpsEnv(t, "dev", topology, opsConfig, "metrics")
	backupEnv := top.OpsEnv(t, "dev", topology, opsConfig, "backup")
	var sentinels []string
	for _, s := range top.Sentinels {
		sentinels = append(sentinels, s.Addr())
	}
	// What the program hands the containers: the Sentinels, the master name, their password.
	for _, e := range []map[string]string{env, backupEnv} {
		require.Equal(t, strings.Join(sentinels, ","), e["REDIS_SENTINELS"], "the Sentinels' addresses")
		require.Equal(t, top.Master, e["REDIS_SENTINEL_MASTER"])
		require.Equal(t, top.Sentinel, e["REDIS_SENTINEL_PASSWORD"])
	}
	require.Equal(t, redisconf.MonitorUser, env["REDIS_USERNAME"])
	for k, v := range env {
		t.Setenv(k, v)
	}

	port, err := redistest.FreePort()
	require.NoError(t, err)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &redistest.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- ops.Run(ctx, []string{"metrics", "--listen", listen, "--timeout", "1s"}, io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("exporter stderr:\n%s", stderr.String())
		}
	})
	url := "http://" + listen + "/metrics"
	require.Eventually(t, func() bool { _, err := http.Get(url); return err == nil }, 10*time.Second, 50*time.Millisecond)

	backup := func() string {
		t.Helper()
		var out, errOut bytes.Buffer
		code := ops.Run(context.Background(), []string{"backup", "--dir", t.TempDir(), "--addr", backupEnv["REDIS_ADDR"],
			"--user", backupEnv["REDIS_USERNAME"], "--password-file", backupEnv["REDIS_PASSWORD_FILE"]}, &out, &errOut)
		require.Equal(t, ops.ExitOK, code, "backup: %s%s", out.String(), errOut.String())
		return strings.TrimSpace(out.String())
	}

	primary := top.Nodes[0]
	client := top.NodeClient(t, primary)
	for i := range 3 {
		require.NoError(t, client.LPush(ctx, "celery", fmt.Sprintf(`{"body":"before-%d"}`, i)).Err())
	}
	m := scrapeSeries(t, url)
	node := func(n *realredis.Process) string { return fmt.Sprintf("{node=%q}", n.Addr()) }
	want := map[string]float64{"redis_up": 1, `redis_celery_queue_length{queue="celery"}`: 3,
		"redis_node_up" + node(primary): 1, "redis_replication_primary" + node(primary): 1}
	for _, r := range top.Nodes[1:] {
		want["redis_node_up"+node(r)] = 1
		want["redis_replication_primary"+node(r)] = 0
		want["redis_replication_link_up"+node(r)] = 1
		if assert.Contains(t, m, fmt.Sprintf("redis_replication_replica_lag_seconds{replica=%q}", r.Addr())) {
			assert.LessOrEqual(t, m[fmt.Sprintf("redis_replication_replica_lag_seconds{replica=%q}", r.Addr())], 2.0)
		}
	}
	epochs := map[string]float64{}
	for _, s := range top.Sentinels {
		want[fmt.Sprintf("redis_sentinel_up{sentinel=%q}", s.Addr())] = 1
		want[fmt.Sprintf("redis_sentinel_quorum_ok{master_name=%q,sentinel=%q}", top.Master, s.Addr())] = 1
		want[fmt.Sprintf("redis_sentinel_primary_info{master_name=%q,primary=%q,sentinel=%q}", top.Master, primary.Addr(), s.Addr())] = 1
		e := fmt.Sprintf("redis_sentinel_config_epoch{master_name=%q,sentinel=%q}", top.Master, s.Addr())
		require.Contains(t, m, e)
		epochs[e] = m[e]
	}
	for series, v := range want {
		if assert.Contains(t, m, series) {
			assert.Equal(t, v, m[series], series)
		}
	}
	line := backup()
	assert.Contains(t, line, "source=network", "a replica's data dir is not this host's: over the connection")
	assert.Contains(t, line, "role=replica", "the primary never forks for a backup while a replica is in sync")
	assert.NotContains(t, line, "node="+primary.Addr())
	t.Logf("backup before the failover: %s", line)

	primary.Kill9()
	killed := time.Now()
	var promoted *realredis.Process
	require.Eventually(t, func() bool {
		m = scrapeSeries(t, url)
		for _, n := range top.Nodes[1:] {
			agreed := m["redis_up"] == 1 && m["redis_replication_primary"+node(n)] == 1
			for _, s := range top.Sentinels {
				agreed = agreed && m[fmt.Sprintf("redis_sentinel_primary_info{master_name=%q,primary=%q,sentinel=%q}", top.Master, n.Addr(), s.Addr())] == 1
			}
			if agreed {
				promoted = n
				return true
			}
		}
		return false
	}, 60*time.Second, 250*time.Millisecond, "the exporter reports a promoted replica that every Sentinel names")
	t.Logf("FIGURE sentinel metrics: the exporter reads the new primary %s %s after the old one was killed", promoted.Addr(), time.Since(killed).Round(100*time.Millisecond))

	// Tasks queued on the new primary after the failover are counted: the figures come from it.
	newClient := top.NodeClient(t, promoted)
	require.Eventually(t, func() bool { return newClient.LPush(ctx, "celery", `{"body":"after"}`).Err() == nil },
		30*time.Second, 200*time.Millisecond, "the new primary takes writes (min-replicas-to-write: its replica must attach)")
	require.NoError(t, newClient.LPush(ctx, "celery", `{"body":"after-2"}`).Err())
	m = scrapeSeries(t, url)
	assert.Equal(t, 5.0, m[`redis_celery_queue_length{queue="celery"}`], "3 before the failover + 2 queued on the new primary")
	assert.Equal(t, 0.0, m["redis_node_up"+node(primary)], "the killed primary is reported down")
	grew := false
	for e, before := range epochs {
		grew = grew || m[e] > before
	}
	assert.True(t, grew, "a Sentinel's config epoch grew with the failover: %v", m)
	line = backup()
	assert.Contains(t, line, "role=replica", "after the failover the remaining replica is the source")
	assert.NotContains(t, line, "node="+promoted.Addr())
	t.Logf("backup after the failover: %s", line)
}
