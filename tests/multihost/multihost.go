// Package multihost gives a test several Docker engines on one machine, each in a network namespace
// of its own with its own address on a bridge the test creates: the separate hosts of the multi-host
// tier (issue 16). Pulumi and the docker CLI reach each engine through its unix socket (a file, so
// from the machine's own namespace); the containers of one host reach the others through the ports
// they publish on the host addresses, as on separate machines. A host can be cut off the network
// (its link down) and come back, or lose its engine.
//
// It needs root, iproute2 (ip), util-linux (nsenter) and dockerd; Require says which is missing.
// Every host, namespace, bridge and engine directory is removed when the test ends; names carry a
// random run id, and Start first removes what a killed run left behind.
package multihost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/emailclient/emailclient-infra/tests/tiers"
)

// Tier is the name of the multi-host tier in EMAILCLIENT_REQUIRE_TIERS and the tier report.
const Tier = "multihost"

// prefix starts the name of every namespace, bridge and link this package creates.
const prefix = "mh"

// EngineStartTimeout bounds the wait for one engine to answer `docker info`.
var EngineStartTimeout = 90 * time.Second

// Missing names what this machine lacks for the tier ("" when nothing).
func Missing() string {
	if os.Geteuid() != 0 {
		return "not root (network namespaces and extra Docker engines need root)"
	}
	var missing []string
	for _, bin := range []string{"ip", "iptables", "nsenter", "dockerd", "docker"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		return "missing " + strings.Join(missing, ", ") + " (apt-get install iproute2 iptables util-linux docker.io)"
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		return "no Docker engine answers `docker info` (its storage driver and images are copied from it)"
	}
	return ""
}

// Require runs the test when the tier can run here; otherwise it skips it with one line naming what
// is missing, or fails it when EMAILCLIENT_REQUIRE_TIERS names the tier.
func Require(t testing.TB) { t.Helper(); tiers.Require(t, Tier, Missing()) }

// Cluster is the hosts of one test and the bridge that joins them.
type Cluster struct {
	Hosts  []*Host
	Bridge string // the bridge in the machine's namespace
	Subnet string // e.g. 10.77.23.0/24; the bridge has .1
	// Registry is the host:port of the plain-HTTP image registry StartWithRegistry serves on the
	// bridge (every engine trusts it as an insecure registry); "" without one.
	Registry string
	id       string
}

// Host is one Docker engine in its own network namespace.
type Host struct {
	Name   string // e.g. "host-1"
	Addr   string // its address on the bridge, which its containers publish ports on
	Socket string // unix:///tmp/mh-…/docker.sock: the docker:host of this engine
	netns  string
	link   string // the bridge side of its veth pair
	dir    string
	engine *exec.Cmd
	done   chan struct{}
	args   []string
}

// Start creates n hosts with an engine each and loads images (from the machine's engine) into every
// engine. The hosts, their engines and the network are removed when the test ends.
func Start(t testing.TB, n int, images ...string) *Cluster {
	t.Helper()
	return start(t, n, false, images)
}

// StartWithRegistry is Start with an image registry (an in-memory one, go-containerregistry's, served
// by the test on the bridge's address) that every engine trusts: Cluster.Registry.
func StartWithRegistry(t testing.TB, n int, images ...string) *Cluster {
	t.Helper()
	return start(t, n, true, images)
}

func start(t testing.TB, n int, withRegistry bool, images []string) *Cluster {
	t.Helper()
	Require(t)
	sweep()
	c := &Cluster{id: randomID()}
	c.Bridge = prefix + c.id + "br"
	b, _ := hex.DecodeString(c.id[:2])
	octet := 20 + int(b[0])%200 // 10.77.20.0/24-10.77.219.0/24, from the run id
	c.Subnet = fmt.Sprintf("10.77.%d.0/24", octet)
	t.Cleanup(c.remove)
	must(t, run("ip", "link", "add", c.Bridge, "type", "bridge"))
	must(t, run("ip", "addr", "add", fmt.Sprintf("10.77.%d.1/24", octet), "dev", c.Bridge))
	must(t, run("ip", "link", "set", c.Bridge, "up"))
	// The machine's engine sets the FORWARD policy to DROP, and bridged frames pass that chain
	// (br_netfilter): let the hosts' traffic through this bridge.
	must(t, run("iptables", append([]string{"-I"}, forwardRule(c.Bridge)...)...))
	daemonJSON := "{}\n"
	if withRegistry {
		l, err := net.Listen("tcp", fmt.Sprintf("10.77.%d.1:0", octet))
		must(t, err)
		srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
		c.Registry = l.Addr().String()
		daemonJSON = fmt.Sprintf("{\"insecure-registries\": [%q]}\n", c.Registry)
	}
	driver, mtu := mainEngineSettings(t)
	for i := 1; i <= n; i++ {
		h := &Host{
			Name:  fmt.Sprintf("host-%d", i),
			Addr:  fmt.Sprintf("10.77.%d.%d", octet, 10+i),
			netns: fmt.Sprintf("%s%s-%d", prefix, c.id, i),
			link:  fmt.Sprintf("%s%sv%d", prefix, c.id, i),
		}
		c.Hosts = append(c.Hosts, h)
		dir, err := os.MkdirTemp("/tmp", prefix+"-")
		must(t, err)
		h.dir, h.Socket = dir, "unix://"+filepath.Join(dir, "docker.sock")
		must(t, run("ip", "netns", "add", h.netns))
		must(t, run("ip", "link", "add", h.link, "type", "veth", "peer", "name", "eth0", "netns", h.netns))
		must(t, run("ip", "link", "set", h.link, "master", c.Bridge, "up"))
		must(t, run("ip", "-n", h.netns, "addr", "add", h.Addr+"/24", "dev", "eth0"))
		must(t, run("ip", "-n", h.netns, "link", "set", "eth0", "up"))
		must(t, run("ip", "-n", h.netns, "link", "set", "lo", "up"))
		must(t, run("ip", "-n", h.netns, "route", "add", "default", "via", fmt.Sprintf("10.77.%d.1", octet)))
		must(t, os.WriteFile(filepath.Join(dir, "daemon.json"), []byte(daemonJSON), 0o644))
		h.args = []string{"--net=/run/netns/" + h.netns, "dockerd",
			"--config-file", filepath.Join(dir, "daemon.json"),
			"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
			"--pidfile", filepath.Join(dir, "docker.pid"), "-H", h.Socket,
			"--bip", fmt.Sprintf("172.30.%d.1/24", i), "--storage-driver", driver}
		if mtu != "" {
			h.args = append(h.args, "--mtu", mtu)
		}
	}
	for _, h := range c.Hosts { // engines start in parallel; the waits follow
		must(t, h.startEngine())
	}
	for _, h := range c.Hosts {
		if err := h.waitEngine(); err != nil {
			t.Fatalf("%s: %v\n%s", h.Name, err, h.EngineLog())
		}
		for _, img := range images {
			if out, err := exec.Command("sh", "-c", `docker save "$1" | docker -H "$2" load`, "sh", img, h.Socket).CombinedOutput(); err != nil {
				t.Fatalf("%s: load %s: %v: %s", h.Name, img, err, out)
			}
		}
	}
	return c
}

// Docker runs the docker CLI against the host's engine and returns its combined output.
func (h *Host) Docker(args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"-H", h.Socket}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Cut takes the host off the network (its link down): its engine and containers keep running but
// nothing reaches them and they reach nothing, as when a machine's network fails.
func (h *Host) Cut() error { return run("ip", "link", "set", h.link, "down") }

// Reconnect brings the host's link back up.
func (h *Host) Reconnect() error { return run("ip", "link", "set", h.link, "up") }

// Partition cuts the host off from the others with iptables rules in its namespace that drop every
// packet in or out of its link, forwarded ones (its containers' traffic) included: unlike Cut, its
// link stays up, so connections hang instead of failing, as in a real network partition. Its own
// containers still reach each other and its address. Heal removes the rules.
func (h *Host) Partition() error {
	for _, rule := range partitionRules {
		if err := run("ip", append([]string{"netns", "exec", h.netns, "iptables", "-w", "-I"}, rule...)...); err != nil {
			return err
		}
	}
	return nil
}

// Heal removes Partition's rules.
func (h *Host) Heal() error {
	var errs []string
	for _, rule := range partitionRules {
		if err := run("ip", append([]string{"netns", "exec", h.netns, "iptables", "-w", "-D"}, rule...)...); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("heal %s: %s", h.Name, strings.Join(errs, "; "))
	}
	return nil
}

// partitionRules drop a host's traffic on its link (eth0 in its namespace), after -I or -D.
var partitionRules = [][]string{
	{"INPUT", "-i", "eth0", "-j", "DROP"},
	{"OUTPUT", "-o", "eth0", "-j", "DROP"},
	{"FORWARD", "-i", "eth0", "-j", "DROP"},
	{"FORWARD", "-o", "eth0", "-j", "DROP"},
}

// EngineLog is the engine's log so far.
func (h *Host) EngineLog() string {
	b, _ := os.ReadFile(filepath.Join(h.dir, "dockerd.log"))
	return string(b)
}

func (h *Host) startEngine() error {
	logf, err := os.OpenFile(filepath.Join(h.dir, "dockerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("nsenter", h.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start dockerd: %w", err)
	}
	h.engine, h.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(h.done) }()
	return nil
}

func (h *Host) waitEngine() error {
	ctx, cancel := context.WithTimeout(context.Background(), EngineStartTimeout)
	defer cancel()
	for {
		if exec.CommandContext(ctx, "docker", "-H", h.Socket, "info").Run() == nil {
			return nil
		}
		select {
		case <-h.done:
			return fmt.Errorf("dockerd exited")
		case <-ctx.Done():
			return fmt.Errorf("dockerd did not answer within %v", EngineStartTimeout)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// StopEngine stops the host's engine (SIGTERM, then SIGKILL after grace), as a machine that goes down:
// its containers stop with it.
func (h *Host) StopEngine(grace time.Duration) {
	if h.engine == nil || h.engine.Process == nil {
		return
	}
	select {
	case <-h.done:
		return
	default:
	}
	_ = h.engine.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(grace):
		_ = syscall.Kill(-h.engine.Process.Pid, syscall.SIGKILL)
		<-h.done
	}
}

// StartEngine starts the host's engine again after StopEngine; containers with a restart policy
// come back with it.
func (h *Host) StartEngine() error {
	if err := h.startEngine(); err != nil {
		return err
	}
	return h.waitEngine()
}

// remove stops every engine (removing its containers first) and deletes the namespaces, the links,
// the bridge and the engines' directories.
func (c *Cluster) remove() {
	for _, h := range c.Hosts {
		if h.engine != nil {
			if ids, err := h.Docker("ps", "-aq"); err == nil && ids != "" {
				_, _ = h.Docker(append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
			}
			h.StopEngine(20 * time.Second)
		}
		removeHost(h.netns, h.link, h.dir)
	}
	_ = run("iptables", append([]string{"-D"}, forwardRule(c.Bridge)...)...)
	_ = run("ip", "link", "del", c.Bridge)
}

// forwardRule is the iptables FORWARD rule (after -I or -D) that lets traffic between the hosts of
// bridge through.
func forwardRule(bridge string) []string {
	return []string{"FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"}
}

func removeHost(netns, link, dir string) {
	if dir != "" {
		// Mounts an engine killed mid-way left under its directories.
		if out, err := exec.Command("sh", "-c", `grep -o " $1/[^ ]*" /proc/self/mounts | sort -r`, "sh", dir).Output(); err == nil {
			for _, m := range strings.Fields(string(out)) {
				_ = syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
		_ = os.RemoveAll(dir)
	}
	_ = run("ip", "link", "del", link)
	_ = run("ip", "netns", "del", netns)
}

// sweep removes what earlier runs killed before their cleanup left: a namespace of this package with
// no process left in it, a FORWARD rule for a bridge that is gone, and a bridge with no link.
func sweep() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || !strings.HasPrefix(f[0], prefix) {
			continue
		}
		if pids, _ := exec.Command("ip", "netns", "pids", f[0]).Output(); strings.TrimSpace(string(pids)) == "" {
			_ = run("ip", "netns", "del", f[0])
		}
	}
	out, _ = exec.Command("iptables", "-S", "FORWARD").Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l) // -A FORWARD -i mhXXXXXbr -o mhXXXXXbr -j ACCEPT
		if len(f) == 8 && f[2] == "-i" && strings.HasPrefix(f[3], prefix) && strings.HasSuffix(f[3], "br") && f[5] == f[3] && f[7] == "ACCEPT" {
			if exec.Command("ip", "link", "show", f[3]).Run() != nil {
				_ = run("iptables", append([]string{"-D"}, forwardRule(f[3])...)...)
			}
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show", "type", "bridge").Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, "br") {
			continue
		}
		if ports, _ := exec.Command("ip", "-o", "link", "show", "master", name).Output(); strings.TrimSpace(string(ports)) == "" {
			_ = run("ip", "link", "del", name)
		}
	}
}

// mainEngineSettings are the storage driver and MTU of the machine's engine, which the test engines
// use too (a machine whose kernel has no overlay support runs fuse-overlayfs, say).
func mainEngineSettings(t testing.TB) (driver, mtu string) {
	t.Helper()
	out, err := exec.Command("docker", "info", "--format", "{{.Driver}}").Output()
	if err != nil {
		t.Fatalf("docker info: %v", err)
	}
	driver = strings.TrimSpace(string(out))
	out, _ = exec.Command("docker", "network", "inspect", "bridge", "--format", `{{index .Options "com.docker.network.driver.mtu"}}`).Output()
	mtu = strings.TrimSpace(string(out))
	if mtu == "<no value>" {
		mtu = ""
	}
	return driver, mtu
}

func randomID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:5]
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
