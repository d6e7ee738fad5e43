package multihost_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/engine"
	"github.com/emailclient/emailclient-infra/tests/multihost"
)

// Producers of the host partition test: per side and mode, hostThreads producers share one task every
// hostInterval (10 tasks/s), fewer than on one host: here eleven containers share the machine.
const (
	hostThreads  = 2
	hostInterval = 100 * time.Millisecond
	hostBefore   = 5 * time.Second  // steady load before the cut (the interpreters start in 1-2 s)
	hostAfter    = 25 * time.Second // and after the heal, through the old primary's demotion
)

// TestPartitionedPrimaryHost is issue 30's partition across hosts: the Sentinel stack deployed over
// three Docker engines (the primary on host-1, workers on host-2 and host-3), then host-1 cut off from
// the others (iptables in its namespace: its containers go on running) while producers on both sides
// enqueue numbered tasks at a steady rate, asynchronous (the default) and synchronous (1 replica,
// 1000 ms), each side in a producer container of the worker's image and env (on host-1, where no
// worker runs, so the cut-off side only produces; on host-3, beside its worker). The workers on
// host-2 and host-3 consume. After the heal the old primary must follow the new one; then every task is accounted for
// (acknowledged or refused by its producer; ran by a worker's log, still queued on the new primary,
// or lost). Lost with synchronous enqueue must be 0.
func TestPartitionedPrimaryHost(t *testing.T) {
	// EMAILCLIENT_MULTIHOST_PARTITIONS chooses the partitions, e.g. "5s,15s,30s" for RELIABILITY.md's
	// table (one deploy each; by default 15 s, longer than downAfterMilliseconds plus the election);
	// EMAILCLIENT_MULTIHOST_PARTITION_SETTINGS adds config by path, e.g.
	// "topology.minReplicasMaxLag=10,topology.downAfterMilliseconds=3000".
	partitions := celerytest.Durations(t, "EMAILCLIENT_MULTIHOST_PARTITIONS", []time.Duration{15 * time.Second})
	settings := map[string]string{}
	if v := os.Getenv("EMAILCLIENT_MULTIHOST_PARTITION_SETTINGS"); v != "" {
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(kv, "=")
			require.True(t, ok, "EMAILCLIENT_MULTIHOST_PARTITION_SETTINGS: path=value, got %q", kv)
			settings[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
	}
	for i, d := range partitions {
		t.Run(fmt.Sprintf("%d-%s", i+1, d), func(t *testing.T) { partitionedHost(t, d, settings) })
	}
}

// side is one side's producers: the container they run in, on which host.
type side struct {
	name      string // "cut-off" or "majority"
	host      *multihost.Host
	container string
}

func partitionedHost(t *testing.T, partition time.Duration, settings map[string]string) {
	c, p := deployAcrossHosts(t, false, func(*multihost.Cluster) map[string]string { return settings })
	h1, h2, h3 := c.Hosts[0], c.Hosts[1], c.Hosts[2]
	base := strings.TrimSuffix(p.Output("redisContainer"), "-0")
	master := p.Output("sentinelMasterName")
	workers := map[*multihost.Host]string{}
	for _, h := range []*multihost.Host{h2, h3} {
		workers[h] = base[:strings.LastIndex(base, "-redis")] + "-email-service-" + h.Name + "-1"
	}
	primaryAddr := func(from *multihost.Host, sentinel int) string {
		out, err := from.Docker("exec", fmt.Sprintf("%s-sentinel-%d", base, sentinel), "sh", "-c",
			`REDISCLI_AUTH=$(cat /run/redis/sentinel.password) exec timeout 3 redis-cli --no-auth-warning -p 26379 SENTINEL get-master-addr-by-name "$0"`, master)
		if err != nil {
			return ""
		}
		return strings.SplitN(out, "\n", 2)[0]
	}
	require.Equal(t, h1.Addr, primaryAddr(h2, 2), "the Sentinels name host-1's node as the primary")

	// The worker's env (URLs with the celery user's password, the Sentinels' password, the CA): the
	// producer container on host-1 gets it through the docker CLI's own environment, never argv.
	envJSON, err := h2.Docker("inspect", "--format", "{{json .Config.Env}}", workers[h2])
	require.NoError(t, err, envJSON)
	var envList []string
	require.NoError(t, json.Unmarshal([]byte(envJSON), &envList))
	workerEnv := map[string]string{}
	for _, kv := range envList {
		k, v, _ := strings.Cut(kv, "=")
		workerEnv[k] = v
	}
	image, err := h2.Docker("inspect", "--format", "{{.Config.Image}}", workers[h2])
	require.NoError(t, err, image)
	if out, err := exec.Command("sh", "-c", `docker -H "$1" save "$3" | docker -H "$2" load`, "sh", h2.Socket, h1.Socket, image).CombinedOutput(); err != nil {
		t.Fatalf("copy the worker image to host-1: %v: %s", err, out)
	}
	// Producers run in containers of their own (the worker's image and env, on the stack's network),
	// never inside a worker container: a worker restarted by its watchdog after the failover would
	// take a producer exec'd in it down (exit 137) mid-run.
	producerOn := func(h *multihost.Host) string {
		network, err := h.Docker("inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
			fmt.Sprintf("%s-%d", base, slices.Index(c.Hosts, h)))
		require.NoError(t, err, network)
		name := base[:strings.LastIndex(base, "-redis")] + "-producer-" + h.Name
		runArgs := []string{"-H", h.Socket, "run", "-d", "--name", name, "--network", strings.Fields(network)[0], "--entrypoint", "sleep"}
		cmdEnv := os.Environ()
		for k, v := range workerEnv {
			if strings.HasPrefix(k, "CELERY_") || strings.HasPrefix(k, "EMAILWORKER_") {
				runArgs = append(runArgs, "-e", k)
				cmdEnv = append(cmdEnv, k+"="+v)
			}
		}
		img := image // host-1's copy of host-2's; a host with a worker built its own
		if w, ok := workers[h]; ok {
			img, err = h.Docker("inspect", "--format", "{{.Config.Image}}", w)
			require.NoError(t, err, img)
		}
		cmd := exec.Command("docker", append(runArgs, img, "infinity")...)
		cmd.Env = cmdEnv
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "producer container on %s: %s", h.Name, out)
		t.Cleanup(func() { _, _ = h.Docker("rm", "-f", name) })
		return name
	}

	sides := []side{{"cut-off", h1, producerOn(h1)}, {"majority", h3, producerOn(h3)}}
	count := int((hostBefore + partition + hostAfter) / hostInterval)
	type produced struct {
		key string
		res celerytest.Result
		err error
	}
	results := make(chan produced, 4)
	for _, s := range sides {
		for _, mode := range []string{"async", "sync"} {
			prefix := strings.SplitN(s.name, "-", 2)[0] + "-" + mode // cut-async, majority-sync, ...
			args := []string{"exec"}
			if mode == "sync" {
				args = append(args, "-e", "CELERY_SYNC_ENQUEUE_REPLICAS=1", "-e", "CELERY_SYNC_ENQUEUE_TIMEOUT_MS=1000")
			}
			args = append(args, s.container, "timeout", "300", "python3", "-m", "emailworker.client", "produce",
				"--count", fmt.Sprint(count), "--threads", fmt.Sprint(hostThreads), "--interval", fmt.Sprint(hostInterval.Seconds()), "--prefix", prefix)
			go func(h *multihost.Host) {
				out, err := h.Docker(args...)
				var res celerytest.Result
				if jerr := json.Unmarshal([]byte(lastLine(out)), &res); jerr != nil {
					err = fmt.Errorf("producer %s: %v (%v): %s", prefix, err, jerr, engine.Tail(out, 15))
				}
				results <- produced{prefix, res, err}
			}(s.host)
		}
	}

	time.Sleep(hostBefore)
	cutAt := time.Now()
	require.NoError(t, h1.Partition())
	t.Cleanup(func() { _ = h1.Heal() })
	// The majority's view: when the Sentinels on host-2 name a new primary.
	var promoted time.Duration
	newPrimary := ""
	for time.Since(cutAt) < partition {
		if a := primaryAddr(h2, 2); a != "" && a != h1.Addr {
			promoted, newPrimary = time.Since(cutAt), a
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(time.Until(cutAt.Add(partition)))
	require.NoError(t, h1.Heal())
	healedAt := time.Now()

	outcomes := map[string]celerytest.Result{}
	for range 4 {
		r := <-results
		require.NoError(t, r.err)
		require.Empty(t, r.res.Error, r.key)
		require.Len(t, r.res.Outcomes, count, r.key)
		outcomes[r.key] = r.res
	}
	if newPrimary == "" {
		newPrimary = primaryAddr(h2, 2)
	}
	// A partition shorter than downAfterMilliseconds plus the election ends before any failover: the
	// old primary stays the primary and the cut-off side's enqueues are all on it.
	failedOver := newPrimary != h1.Addr
	newNode := ""
	for i, h := range c.Hosts {
		if h.Addr == newPrimary {
			newNode = fmt.Sprintf("%s-%d", base, i)
		}
	}
	require.NotEmpty(t, newNode, "the new primary %s is a node of the stack", newPrimary)
	newHost := c.Hosts[int(newNode[len(newNode)-1]-'0')]

	// The old primary follows the new one once the Sentinels reach it again.
	var demoted time.Duration
	for failedOver && time.Since(healedAt) < 120*time.Second {
		info, _ := h1.Docker("exec", base+"-0", "sh", "-c", `REDISCLI_AUTH=$(cat /run/redis/monitor.password) exec redis-cli --no-auth-warning --user monitor INFO replication`)
		if strings.Contains(info, "role:slave") && strings.Contains(info, "master_host:"+newPrimary+"\r") && strings.Contains(info, "master_link_status:up") {
			demoted = time.Since(healedAt)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.True(t, !failedOver || demoted > 0, "the old primary follows %s within 120 s of the heal", newPrimary)

	// The celery user (from the broker URL) reads the queue and the unacknowledged hash on the new primary.
	u, err := url.Parse(strings.SplitN(workerEnv["CELERY_BROKER_URL"], ";", 2)[0])
	require.NoError(t, err)
	password, _ := u.User.Password()
	redisCLI := func(args ...string) ([]string, error) {
		cmd := exec.Command("docker", append([]string{"-H", newHost.Socket, "exec", "-e", "REDISCLI_AUTH", newNode,
			"redis-cli", "--no-auth-warning", "--user", u.User.Username()}, args...)...)
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+password)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("redis-cli %v: %v: %s", args, err, out)
		}
		return strings.Fields(string(out)), nil
	}
	// Let the workers drain the queue (the reference worker's watchdog restarts a stalled one).
	drained := false
	for wait := time.Now().Add(120 * time.Second); time.Now().Before(wait); time.Sleep(time.Second) {
		n, err1 := redisCLI("LLEN", "celery")
		m, err2 := redisCLI("HLEN", "unacked")
		if err1 == nil && err2 == nil && len(n) == 1 && n[0] == "0" && len(m) == 1 && m[0] == "0" {
			drained = true
			break
		}
	}
	queue, err := redisCLI("LRANGE", "celery", "0", "-1")
	require.NoError(t, err)
	unacked, err := redisCLI("HVALS", "unacked")
	require.NoError(t, err)
	queued := celerytest.QueuedIDs(queue, unacked)
	var logs []string
	for _, h := range []*multihost.Host{h2, h3} {
		log, err := h.Docker("logs", workers[h])
		require.NoError(t, err)
		logs = append(logs, log)
	}
	ran, putBack := celerytest.RanByID(logs...), celerytest.PutBackIDs(logs...)

	defaults := components.DefaultTopology()
	settingsText := fmt.Sprintf("defaults (downAfterMilliseconds %d, minReplicasToWrite %d, minReplicasMaxLag %d)",
		defaults.DownAfterMilliseconds, defaults.MinReplicasToWrite, defaults.MinReplicasMaxLag)
	if len(settings) > 0 {
		settingsText = fmt.Sprint(settings)
	}
	for _, s := range sides {
		for _, mode := range []string{"async", "sync"} {
			prefix := strings.SplitN(s.name, "-", 2)[0] + "-" + mode
			res := outcomes[prefix]
			h := celerytest.NewHistory(prefix, res.Outcomes, ran, queued)
			// Unavailability: the longest stretch without an acknowledged enqueue from the cut to the
			// end of the run; and when this side's enqueues were first refused after the cut.
			gap := celerytest.LongestGap(res.Outcomes, cutAt, time.Time{})
			ackedCutOff := 0 // acknowledged while the partition lasted
			for _, o := range res.Outcomes {
				if o.Error == "" && o.Returned().After(cutAt) && o.Returned().Before(healedAt) {
					ackedCutOff++
				}
			}
			lostIDs := fmt.Sprint(h.LostIDs)
			if len(h.LostIDs) > 6 {
				lostIDs = fmt.Sprintf("[%s .. %s]", h.LostIDs[0], h.LostIDs[len(h.LostIDs)-1])
			}
			firstRefusal := ""
			for _, o := range res.Outcomes {
				if o.Error != "" && o.Returned().After(cutAt) {
					firstRefusal = fmt.Sprintf("%.1f s", o.Returned().Sub(cutAt).Seconds())
					break
				}
			}
			t.Logf("FIGURE partition multihost, %s cut off %s, %s, %s side (%s), %s: %d sent, %d acknowledged, %d refused %v (%d of them ran anyway), "+
				"%d lost %s, %d still queued, %d ran twice (%d of them redelivered by design: put back or republished); %d acknowledged during the partition; longest stretch without an acknowledged enqueue from the cut %.1f s; "+
				"first refusal after the cut at %s; the producer's first enqueue %.1f s before the cut",
				h1.Name, partition, settingsText, s.name, s.host.Name, mode, h.Sent, h.Acknowledged, h.Refused, h.Refusals, h.RefusedRan,
				h.Lost, lostIDs, h.Queued, h.Duplicates, h.Duplicates-len(h.Unexplained(putBack)), ackedCutOff, gap.Seconds(), firstRefusal, cutAt.Sub(res.Outcomes[0].Started()).Seconds())
			for class, msg := range h.RefusalExamples {
				t.Logf("%s: first %s: %s", prefix, class, msg)
			}
			if mode == "sync" {
				assert.Zero(t, h.Lost, "%s: synchronous enqueue loses no acknowledged task (%v)", prefix, h.LostIDs)
				assert.Empty(t, h.Unexplained(putBack), "%s: no task ran twice but those redelivered by design (%v)", prefix, h.DuplicateIDs)
			}
			assert.NotZero(t, h.Acknowledged, "%s: the producers were acknowledged at all", prefix)
		}
	}
	promotedText := "not within the partition"
	demotedText := fmt.Sprintf("the old primary a replica of it %.1f s after the heal", demoted.Seconds())
	if !failedOver {
		demotedText = "no failover: the old primary kept its role"
	}
	if promoted > 0 {
		promotedText = fmt.Sprintf("%.1f s after the cut", promoted.Seconds())
	}
	t.Logf("FIGURE partition multihost, %s cut off %s: majority side without a primary until the Sentinels on host-2 named %s %s; "+
		"%s; queue drained: %v", h1.Name, partition, newPrimary, promotedText, demotedText, drained)
	for _, s := range sides { // not the stack's: they would hold its network
		_, _ = s.host.Docker("rm", "-f", s.container)
	}
	require.NoError(t, p.Destroy())
}
