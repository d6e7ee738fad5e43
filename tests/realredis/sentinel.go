package realredis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/proc"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// Topology is a sentinel topology started from what the program declares: every node and Sentinel
// runs its declared config through the image's entrypoint, on its own loopback address (127.X.2.x
// for data nodes, 127.X.3.x for Sentinels, X chosen per topology: see loopbackPrefix) with the
// declared ports, as the redis user.
type Topology struct {
	Root      string
	Nodes     []*Process // data nodes; Nodes[0] is the initial primary
	Sentinels []*Process
	Env       map[string]string // the email-service env, with aliases moved to the loopback addresses
	Ops       string
	Sentinel  string // the Sentinels' password
	Master    string
	local     func(string) string
}

// Local returns s with the topology's network aliases (redis-0, redis-sentinel-0, ...) replaced by
// the loopback addresses of this test's servers, as Env has them.
func (top *Topology) Local(s string) string { return top.local(s) }

// Process is one redis-server (data node or Sentinel) of a Topology.
type Process struct {
	Alias, IP      string
	Port           int
	RunDir         string
	DataDir        string
	args           []string
	env            []string
	entry, logPath string
	proc.Proc
}

// Addr is ip:port.
func (p *Process) Addr() string { return fmt.Sprintf("%s:%d", p.IP, p.Port) }

// Log returns the process's output.
func (p *Process) Log() string { b, _ := os.ReadFile(p.logPath); return string(b) }

// Kill9 kills the process and waits for it.
func (p *Process) Kill9() { p.Signal(syscall.SIGKILL, 0) }

// Pause stops the process with SIGSTOP, as `docker pause` freezes a container: its sockets stay
// open and the kernel keeps accepting connections and buffering what clients send, but nothing is
// answered until Resume. Cleanup kills a paused process as any other.
func (p *Process) Pause() { _ = syscall.Kill(-p.Pid(), syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Process) Resume() { _ = syscall.Kill(-p.Pid(), syscall.SIGCONT) }

// Restart stops the process as Docker stops a container (SIGTERM, then SIGKILL after grace) and
// starts it again with the same command, as a replaced container starts.
func (p *Process) Restart(t testing.TB, grace time.Duration) {
	t.Helper()
	p.Signal(syscall.SIGTERM, grace)
	must(t, p.start())
}

// Upload rewrites one of the process's uploaded files (a base name in RunDir), as a deployment that
// changed it does.
func (p *Process) Upload(t testing.TB, name string, edit func(string) string) {
	t.Helper()
	path := filepath.Join(p.RunDir, name)
	must(t, os.WriteFile(path, []byte(edit(readFile(t, path))), 0o444))
}

func (p *Process) start() error {
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own descriptor
	cmd := exec.Command(p.entry, p.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = append(os.Environ(), p.env...), log, log
	return p.Start(cmd)
}

var aliasRe = regexp.MustCompile(`\b(redis|sentinel)-[0-9]+\b`)

// StartSentinel evaluates the program for stack with the sentinel topology (plus extra topology
// settings, e.g. a short downAfterMilliseconds) and starts every declared data node and Sentinel.
func StartSentinel(t testing.TB, stack, topology string) *Topology {
	t.Helper()
	return StartSentinelConfig(t, stack, map[string]string{"topology": topology})
}

// StartSentinelConfig is StartSentinel with more of the stack's config (objects as JSON by key, e.g.
// "celery"); config["topology"] must set the sentinel mode, and container.hostPort is 0 unless given.
func StartSentinelConfig(t testing.TB, stack string, config map[string]string) *Topology {
	t.Helper()
	redistest.Require(t)
	cfg := map[string]string{"container": `{"hostPort":0}`}
	for k, v := range config {
		cfg[k] = v
	}
	r, err := declared.Run(stack, declared.Options{Config: cfg})
	if err != nil {
		t.Fatalf("program for %s: %v", stack, err)
	}
	top := &Topology{Root: r.Root}
	prefix := loopbackPrefix(t)
	ips := map[string]string{}
	for _, res := range r.ByType(declared.ContainerType) {
		if !res.Inputs["networksAdvanced"].IsArray() {
			continue // a files carrier: no network
		}
		alias := res.Inputs["networksAdvanced"].ArrayValue()[0].ObjectValue()["aliases"]
		if !alias.HasValue() {
			continue
		}
		a := alias.ArrayValue()[0].StringValue()
		var n int
		if _, err := fmt.Sscanf(a, "redis-%d", &n); err == nil {
			ips[a] = fmt.Sprintf("%s.2.%d", prefix, n+1)
		} else if _, err := fmt.Sscanf(a, "sentinel-%d", &n); err == nil {
			ips[a] = fmt.Sprintf("%s.3.%d", prefix, n)
		}
	}
	toIP := func(s string) string { return aliasRe.ReplaceAllStringFunc(s, func(a string) string { return ips[a] }) }
	entry := Entrypoint(t, top.Root)
	for _, res := range r.ByType(declared.ContainerType) {
		files, ok := r.RunFiles(res.Name)
		if !ok {
			continue // not a Redis node: the email-service or a files carrier
		}
		alias := res.Inputs["networksAdvanced"].ArrayValue()[0].ObjectValue()["aliases"].ArrayValue()[0].StringValue()
		base := sharedTempDir(t)
		p := &Process{Alias: alias, IP: ips[alias], RunDir: filepath.Join(base, "run"), DataDir: filepath.Join(base, "data"), entry: entry, logPath: filepath.Join(base, "log")}
		must(t, os.Mkdir(p.RunDir, 0o700))
		must(t, os.Mkdir(p.DataDir, 0o700))
		for path, content := range files {
			// Only addresses and the container's paths move; every other line stays as declared.
			content = toIP(strings.NewReplacer("bind * -::*", "bind "+p.IP, "dir "+redisconf.DataDir+"\n", "dir "+p.DataDir+"\n",
				redisconf.RunDir+"/", p.RunDir+"/").Replace(content))
			must(t, os.WriteFile(filepath.Join(p.RunDir, filepath.Base(path)), []byte(content), 0o444))
		}
		chownToRedis(t, p.RunDir, p.DataDir)
		p.env = []string{"REDIS_RUN_DIR=" + p.RunDir, "REDIS_DATA_DIR=" + p.DataDir}
		if strings.HasPrefix(alias, "sentinel-") {
			p.Port, p.args = redisconf.SentinelPort, []string{"sentinel"}
			top.Sentinels = append(top.Sentinels, p)
			top.Sentinel = readFile(t, filepath.Join(p.RunDir, "sentinel.password"))
		} else {
			// The declared command, with the container's run directory moved.
			for _, a := range res.Inputs["command"].ArrayValue() {
				p.args = append(p.args, strings.Replace(a.StringValue(), redisconf.RunDir+"/", p.RunDir+"/", 1))
			}
			p.Port = 6379
			top.Nodes = append(top.Nodes, p)
			top.Ops = readFile(t, filepath.Join(p.RunDir, "ops.password"))
		}
		t.Cleanup(p.Kill9)
		must(t, p.start())
	}
	// The mocks record resources as their inputs resolve, in no fixed order: Nodes[0] must be redis-0,
	// the initial primary.
	byAlias := func(a, b *Process) int { return strings.Compare(a.Alias, b.Alias) }
	slices.SortFunc(top.Nodes, byAlias)
	slices.SortFunc(top.Sentinels, byAlias)
	// Registered after the temp dirs, so it runs before they are removed.
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range append(top.Nodes, top.Sentinels...) {
				t.Logf("--- %s log tail ---\n%s", p.Alias, tail(p.Log(), 25))
			}
		}
	})
	c, _ := r.Get(declared.ContainerType, "email-service-container")
	top.Env, top.local = map[string]string{}, toIP
	for _, kv := range c.Inputs["envs"].SecretValue().Element.ArrayValue() {
		k, v, _ := strings.Cut(kv.StringValue(), "=")
		top.Env[k] = toIP(v)
	}
	top.Master = top.Env["CELERY_SENTINEL_MASTER_NAME"]
	top.waitReady(t)
	return top
}

// loopbackPrefix picks the 127.X of a topology's addresses: a random X whose first data-node address
// is free, so that the test binaries of two packages, which go test runs in parallel, never start
// their topologies on the same addresses.
func loopbackPrefix(t testing.TB) string {
	t.Helper()
	for range 100 {
		prefix := fmt.Sprintf("127.%d", 1+rand.IntN(250))
		if l, err := net.Listen("tcp", prefix+".2.1:6379"); err == nil {
			l.Close()
			return prefix
		}
	}
	t.Fatal("realredis: no free 127.X.2.1:6379 for a sentinel topology")
	return ""
}

// NodeClient connects to a data node as the ops user.
func (top *Topology) NodeClient(t testing.TB, p *Process) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), Username: redisconf.OpsUser, Password: top.Ops, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// SentinelClient connects to a Sentinel with the Sentinels' password.
func (top *Topology) SentinelClient(t testing.TB, p *Process) *redis.SentinelClient {
	c := redis.NewSentinelClient(&redis.Options{Addr: p.Addr(), Password: top.Sentinel, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// PrimaryAddr asks the first reachable Sentinel for the current primary.
func (top *Topology) PrimaryAddr(t testing.TB) string {
	for _, s := range top.Sentinels {
		addr, err := top.SentinelClient(t, s).GetMasterAddrByName(context.Background(), top.Master).Result()
		if err == nil {
			return addr[0] + ":" + addr[1]
		}
	}
	return ""
}

// waitReady waits until every replica is in sync (and counts for min-replicas-to-write) and every
// Sentinel sees a quorum and knows every replica.
func (top *Topology) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	ctx := context.Background()
	node, sentinels := top.NodeClient(t, top.Nodes[0]), []*redis.SentinelClient{}
	for _, s := range top.Sentinels {
		sentinels = append(sentinels, top.SentinelClient(t, s))
	}
	// Sentinels find each other through hello messages (every 2 s): CKQUORUM says OK as soon as a
	// quorum is usable, so wait until every Sentinel counts all of them.
	usable := fmt.Sprintf("OK %d usable", len(top.Sentinels))
	var why string
	for time.Now().Before(deadline) {
		info, err := node.Info(ctx, "replication").Result()
		// Replicas count as good (min-replicas-to-write) once their first REPLCONF ACK arrived; until
		// then the primary refuses writes with NOREPLICAS.
		ready := err == nil && strings.Contains(info, fmt.Sprintf("connected_slaves:%d", len(top.Nodes)-1)) &&
			!strings.Contains(info, "min_slaves_good_slaves:0")
		why = fmt.Sprintf("primary: %v %q", err, info)
		for i, s := range sentinels {
			reply, err := s.CkQuorum(ctx, top.Master).Result()
			// A Sentinel learns the replicas from the primary's INFO (every 10 s); until it knows them,
			// it has no replica to promote and a failover aborts.
			replicas, rerr := s.Replicas(ctx, top.Master).Result()
			ready = ready && err == nil && strings.HasPrefix(reply, usable) && rerr == nil && len(replicas) == len(top.Nodes)-1
			why += fmt.Sprintf("; sentinel-%d: %q %v, knows %d replicas", i+1, reply, err, len(replicas))
		}
		if ready {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Log(why)
	t.Fatal("sentinel topology not ready within 60s (replicas in sync, every Sentinel seeing every other Sentinel and every replica)")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Alias returns the alias components gives data node i (for readable test messages).
func Alias(i int) string { return components.NodeAlias(i) }
