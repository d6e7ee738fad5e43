package realredis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/realredis"
)

// writer sets keys through the Sentinels until stopped and records what was acknowledged and the
// longest stretch without an acknowledged write.
type writer struct {
	acked   []string
	failed  int
	errs    map[string]int // distinct errors and their counts
	longest time.Duration
	stop    chan struct{}
	done    sync.WaitGroup
}

func startWriter(t *testing.T, top *realredis.Topology) *writer {
	var sentinels []string
	for _, s := range top.Sentinels {
		sentinels = append(sentinels, s.Addr())
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: top.Master, SentinelAddrs: sentinels, SentinelPassword: top.Sentinel,
		Username: redisconf.OpsUser, Password: top.Ops, DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	w := &writer{stop: make(chan struct{}), errs: map[string]int{}}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		last := time.Now()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				w.longest = max(w.longest, time.Since(last))
				return
			case <-time.After(10 * time.Millisecond):
			}
			key := fmt.Sprintf("change:%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := c.Set(ctx, key, i, 0).Err()
			cancel()
			if err != nil {
				w.failed++
				w.errs[err.Error()]++
				continue
			}
			w.acked = append(w.acked, key)
			w.longest = max(w.longest, time.Since(last))
			last = time.Now()
		}
	}()
	return w
}

func (w *writer) finish() { close(w.stop); w.done.Wait() }

// role returns a node's INFO replication role line and master host ("" for a primary).
func role(t *testing.T, top *realredis.Topology, p *realredis.Process) (string, string) {
	info, err := top.NodeClient(t, p).Info(context.Background(), "replication").Result()
	if err != nil {
		return "unreachable: " + err.Error(), ""
	}
	var r, host string
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "role:"); ok {
			r = v
		}
		if v, ok := strings.CutPrefix(l, "master_host:"); ok {
			host = v
		}
	}
	return r, host
}

// TestChangeAfterFailoverKeepsThePrimary fails the primary over, brings the old primary back, then
// makes a change that reaches every node and Sentinel (each uploaded file changes, as a password
// rotation or any setting does) and restarts the nodes as the program replaces them: one at a time,
// the replicas first and the current primary last, then the Sentinels together. Before the fix, a
// node started from its uploaded role and each Sentinel from its initial config, so the change made
// redis-0 the primary again. It requires the promoted node to stay the primary, every other node to
// replicate from it, every acknowledged write to survive, and prints the longest write outage against
// the primary's own restart time.
func TestChangeAfterFailoverKeepsThePrimary(t *testing.T) {
	top := realredis.StartSentinel(t, "dev", `{"mode":"sentinel","downAfterMilliseconds":2000,"failoverTimeoutMilliseconds":20000}`)
	initial := top.Nodes[0]
	initial.Kill9()
	var primary *realredis.Process
	deadline := time.Now().Add(60 * time.Second)
	for primary == nil && time.Now().Before(deadline) {
		for _, n := range top.Nodes[1:] {
			if top.PrimaryAddr(t) == n.Addr() {
				if r, _ := role(t, top, n); r == "master" {
					primary = n
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if primary == nil {
		t.Fatal("no replica was promoted within 60s")
	}
	initial.Restart(t, 10*time.Second)
	waitRoles(t, top, primary, "the old primary rejoins as a replica")
	t.Logf("after the failover: primary %s (%s); %s rejoined as its replica", primary.Alias, primary.Addr(), initial.Alias)

	w := startWriter(t, top)
	time.Sleep(time.Second)
	for _, n := range top.Nodes {
		n.Upload(t, "redis.conf", func(s string) string { return s + "# a change\n" })
	}
	for _, s := range top.Sentinels {
		s.Upload(t, "sentinel.conf", func(s string) string { return s + "# a change\n" })
	}
	var primaryRestart time.Duration
	for _, n := range append(without(top.Nodes, primary), primary) {
		start := time.Now()
		n.Restart(t, 10*time.Second)
		for top.NodeClient(t, n).Ping(context.Background()).Err() != nil {
			if time.Since(start) > 30*time.Second {
				t.Fatalf("%s does not answer 30s after its restart", n.Alias)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n == primary {
			primaryRestart = time.Since(start)
		}
		time.Sleep(time.Second) // Pulumi waits for the healthcheck before the next node
	}
	for _, s := range top.Sentinels {
		s.Restart(t, 10*time.Second)
	}
	waitRoles(t, top, primary, "after the change")
	time.Sleep(time.Second)
	w.finish()

	lost := 0
	c := top.NodeClient(t, primary)
	for _, k := range w.acked {
		if c.Exists(context.Background(), k).Val() != 1 {
			lost++
		}
	}
	t.Logf("FIGURE change after a failover: primary kept on %s; %d writes acknowledged, %d lost, %d refused or timed out; longest stretch without an acknowledged write %s (the primary's own restart until PING: %s)",
		primary.Alias, len(w.acked), lost, w.failed, w.longest.Round(10*time.Millisecond), primaryRestart.Round(10*time.Millisecond))
	t.Logf("refusals: %v", w.errs)
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes lost", lost, len(w.acked))
	}
	if w.longest > primaryRestart+3*time.Second {
		t.Errorf("longest write outage %s is more than the primary's restart (%s) plus 3s", w.longest, primaryRestart)
	}
}

// waitRoles waits until the Sentinels name primary, it is a master and every other node replicates
// from it.
func waitRoles(t *testing.T, top *realredis.Topology, primary *realredis.Process, when string) {
	t.Helper()
	var why string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		why = fmt.Sprintf("sentinels name %q", top.PrimaryAddr(t))
		ok := top.PrimaryAddr(t) == primary.Addr()
		for _, n := range top.Nodes {
			r, host := role(t, top, n)
			why += fmt.Sprintf("; %s: %s %s", n.Alias, r, host)
			if n == primary {
				ok = ok && r == "master"
			} else {
				ok = ok && r == "slave" && host == primary.IP
			}
		}
		if ok {
			return
		}
	}
	t.Fatalf("%s: roles not settled on %s within 60s: %s", when, primary.Alias, why)
}

func without(nodes []*realredis.Process, p *realredis.Process) []*realredis.Process {
	var out []*realredis.Process
	for _, n := range nodes {
		if n != p {
			out = append(out, n)
		}
	}
	return out
}
