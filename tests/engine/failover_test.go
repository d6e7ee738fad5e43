package engine_test

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// nodeCLI runs redis-cli inside a Redis container as user, with that container's own copy of the
// user's password file (always the generation the container runs with), and returns its output.
func nodeCLI(container, user string, port int, args ...string) (string, error) {
	script := `user=$0 port=$1; shift; REDISCLI_AUTH=$(cat "/run/redis/$user.password") exec redis-cli --no-auth-warning --user "$user" -p "$port" "$@"`
	out, err := exec.Command("docker", append([]string{"exec", container, "sh", "-c", script, user, strconv.Itoa(port)}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// sentinelPrimary asks the Sentinels (in their containers, with their own password file) for the
// current primary's alias.
func sentinelPrimary(sentinels []string, master string) string {
	for _, s := range sentinels {
		out, err := exec.Command("docker", "exec", s, "sh", "-c",
			`REDISCLI_AUTH=$(cat /run/redis/sentinel.password) exec redis-cli --no-auth-warning -p 26379 SENTINEL get-master-addr-by-name "$0"`, master).Output()
		if err == nil && len(strings.Fields(string(out))) == 2 {
			return strings.Fields(string(out))[0]
		}
	}
	return ""
}

// writes pushes an increasing counter to whichever data node accepts writes (the primary with its
// replicas in sync), through docker exec, until stopped; it records the acknowledged values and the
// longest stretch without an acknowledged write (resolution: one docker exec, about 0.1 s).
type writes struct {
	nodes   []string
	acked   []int
	longest time.Duration
	stop    chan struct{}
	wg      sync.WaitGroup
}

func startWrites(nodes []string) *writes {
	w := &writes{nodes: nodes, stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		last := time.Now()
		for i := 0; ; {
			select {
			case <-w.stop:
				w.longest = max(w.longest, time.Since(last))
				return
			default:
			}
			for _, n := range w.nodes {
				out, err := nodeCLI(n, "ops", 6379, "RPUSH", "engine:acknowledged", strconv.Itoa(i))
				if _, perr := strconv.Atoi(out); err == nil && perr == nil {
					w.acked = append(w.acked, i)
					w.longest = max(w.longest, time.Since(last))
					last = time.Now()
					i++
					break
				}
			}
		}
	}()
	return w
}

func (w *writes) finish() { close(w.stop); w.wg.Wait() }

// lost counts the acknowledged values missing from the list on primary.
func (w *writes) lost(t *testing.T, primary string) int {
	out, err := nodeCLI(primary, "ops", 6379, "LRANGE", "engine:acknowledged", "0", "-1")
	require.NoError(t, err, out)
	present := map[string]bool{}
	for _, v := range strings.Fields(out) {
		present[v] = true
	}
	n := 0
	for _, i := range w.acked {
		if !present[strconv.Itoa(i)] {
			n++
		}
	}
	return n
}

// startedAt is a container's State.StartedAt.
func startedAt(t *testing.T, container string) time.Time {
	at, err := time.Parse(time.RFC3339Nano, inspect(t, container)["State"].(map[string]any)["StartedAt"].(string))
	require.NoError(t, err)
	return at
}

// TestSentinelChangeAndRotationAfterFailover: the Sentinel topology deployed (Automation API), a failover
// forced with SENTINEL FAILOVER (redis-0 is then a replica), then two deploys (Stack.Up) under a
// write load: a change that replaces every data node (redis.loglevel), and a password rotation (every
// node and Sentinel). After each: the promoted node is still the primary (the Sentinels say so and the
// other nodes replicate from it), it was replaced last, a second preview shows no change. It prints the
// acknowledged writes lost (0 required) and the longest stretch without an acknowledged write, and
// requires the rotation's to stay within twice the change's plus 2 s.
func TestSentinelChangeAndRotationAfterFailover(t *testing.T) {
	p, _ := newStack(t, "sentinel")
	p.SetPaths(map[string]string{"profile": "dev", "topology.mode": "sentinel", "container.hostPort": "0"})
	p.Up()
	base := strings.TrimSuffix(p.Output("redisContainer"), "-0")
	master := p.Output("sentinelMasterName")
	nodes := []string{base + "-0", base + "-1", base + "-2"}
	sentinels := []string{base + "-sentinel-1", base + "-sentinel-2", base + "-sentinel-3"}
	require.Equal(t, "redis-0", sentinelPrimary(sentinels, master))
	// A first deploy creates the Sentinels and the worker alongside the data nodes: none restarted (the
	// worker waits until the primary accepts writes, which it refuses until a replica has synced).
	for _, c := range append(slices.Clone(sentinels), p.Output("emailServiceContainer")) {
		require.EqualValues(t, 0, inspect(t, c)["RestartCount"], "%s restarted during the first deploy; its log:\n%s", c, logs(c))
	}

	failover, err := exec.Command("docker", "exec", sentinels[0], "sh", "-c",
		`REDISCLI_AUTH=$(cat /run/redis/sentinel.password) exec redis-cli --no-auth-warning -p 26379 SENTINEL FAILOVER "$0"`, master).CombinedOutput()
	require.NoError(t, err, "SENTINEL FAILOVER: %s", failover)
	promoted := settled(t, nodes, sentinels, master, "", "after the failover")
	require.NotEqual(t, "redis-0", promoted)
	t.Logf("failover: %s is the primary, redis-0 a replica", promoted)
	node := func(alias string) string { return base + strings.TrimPrefix(alias, "redis") }

	var outages []time.Duration
	for _, change := range []struct{ name, key, value string }{
		{"a change replacing every data node (redis.loglevel)", "redis.loglevel", "warning"},
		{"a password rotation", "passwordRotation", "1"},
	} {
		w := startWrites(nodes)
		time.Sleep(2 * time.Second)
		p.SetPath(change.key, change.value)
		start := time.Now()
		up := p.Up()
		upTime := time.Since(start)
		require.Positive(t, (*up.Changes)["replace"], "the change replaces the data nodes: %v", *up.Changes)
		primary := settled(t, nodes, sentinels, master, promoted, change.name)
		time.Sleep(2 * time.Second)
		w.finish()
		lost := w.lost(t, node(primary))
		order := slices.Clone(nodes)
		slices.SortFunc(order, func(a, b string) int { return startedAt(t, a).Compare(startedAt(t, b)) })
		t.Logf("FIGURE %s after a failover (pulumi up %s): primary before %s, after %s; data nodes restarted in the order %v; %d acknowledged writes, %d lost; longest stretch without an acknowledged write %s",
			change.name, upTime.Round(100*time.Millisecond), promoted, primary, order, len(w.acked), lost, w.longest.Round(100*time.Millisecond))
		assert.Equal(t, promoted, primary, "the primary stays where the failover put it")
		assert.Equal(t, node(promoted), order[len(order)-1], "the primary is replaced last")
		assert.Zero(t, lost, "acknowledged writes lost")
		p.PreviewNoChanges()
		outages = append(outages, w.longest)
	}
	// The change's outage is the primary's own restart; a rotation restarts every node and Sentinel
	// and must not take writes away for much longer (nodes of both generations authenticate to each
	// other while they are replaced one at a time).
	assert.Less(t, outages[1], 2*outages[0]+2*time.Second, "the rotation's outage against the change's (one restart of the primary) in the same run")
	roundTrip(t, p.Output("emailServiceContainer"))
}

// settled waits until the Sentinels name one primary (want, when given), it is a master and the other
// nodes replicate from it with their link up; it returns the primary's alias.
func settled(t *testing.T, nodes, sentinels []string, master, want, when string) string {
	t.Helper()
	var why string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		primary := sentinelPrimary(sentinels, master)
		why = fmt.Sprintf("Sentinels name %q", primary)
		ok := primary != "" && (want == "" || primary == want)
		for i, n := range nodes {
			info, err := nodeCLI(n, "monitor", 6379, "INFO", "replication")
			alias := fmt.Sprintf("redis-%d", i)
			isMaster := strings.Contains(info, "role:master")
			why += fmt.Sprintf("; %s: %.120q %v", alias, info, err)
			if alias == primary {
				ok = ok && isMaster
			} else {
				ok = ok && strings.Contains(info, "master_host:"+primary+"\r") && strings.Contains(info, "master_link_status:up")
			}
		}
		if ok {
			return primary
		}
	}
	t.Fatalf("%s: roles not settled within 90s: %s", when, why)
	return ""
}
