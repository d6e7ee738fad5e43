package multihost_test

import (
	"strings"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/tests/multihost"
)

// baseImage is the local Debian image with redis-server and redis-cli (make base-images).
const baseImage = "local/redis-base:bookworm"

// TestThreeHosts checks the tier's own ground before the stacks are put on it: three engines start,
// each runs a Redis that publishes its port on its host's address, a container on host-1 reaches the
// Redis on host-3 through that address (the path cross-host replication and Sentinel take), a cut
// host is unreachable from the others until it is reconnected, and a stopped engine takes its
// containers down and brings the ones with a restart policy back when it starts again.
func TestThreeHosts(t *testing.T) {
	start := time.Now()
	c := multihost.Start(t, 3, baseImage)
	t.Logf("FIGURE multihost: 3 engines started and %s loaded into each in %s (subnet %s)", baseImage, time.Since(start).Round(100*time.Millisecond), c.Subnet)
	for _, h := range c.Hosts {
		if out, err := h.Docker("run", "-d", "--name", "redis", "--restart", "unless-stopped", "-p", h.Addr+":6379:6379", baseImage,
			"redis-server", "--protected-mode", "no", "--save", ""); err != nil {
			t.Fatalf("%s: run redis: %v: %s", h.Name, err, out)
		}
	}
	h1, h3 := c.Hosts[0], c.Hosts[2]
	ping := func(from *multihost.Host, to *multihost.Host) (string, error) {
		return from.Docker("run", "--rm", baseImage, "timeout", "5", "redis-cli", "-h", to.Addr, "-p", "6379", "ping")
	}
	waitPong := func(from, to *multihost.Host) time.Duration {
		t.Helper()
		begin := time.Now()
		for {
			out, err := ping(from, to)
			if err == nil && strings.TrimSpace(out) == "PONG" {
				return time.Since(begin)
			}
			if time.Since(begin) > 30*time.Second {
				t.Fatalf("%s -> %s:6379: %v %q", from.Name, to.Addr, err, out)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	for _, to := range c.Hosts {
		waitPong(h1, to)
	}
	t.Logf("a container on %s reaches the Redis published on every host's address", h1.Name)

	if err := h3.Cut(); err != nil {
		t.Fatal(err)
	}
	if out, err := ping(h1, h3); err == nil && strings.Contains(out, "PONG") {
		t.Fatalf("%s still reaches %s after it was cut off: %q", h1.Name, h3.Name, out)
	}
	if err := h3.Reconnect(); err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE multihost: %s cut off: unreachable from %s; reconnected: PONG again after %s", h3.Name, h1.Name, waitPong(h1, h3).Round(100*time.Millisecond))

	h3.StopEngine(20 * time.Second)
	if out, err := ping(h1, h3); err == nil && strings.Contains(out, "PONG") {
		t.Fatalf("%s still answers with its engine stopped: %q", h3.Name, out)
	}
	if err := h3.StartEngine(); err != nil {
		t.Fatalf("%s: restart engine: %v\n%s", h3.Name, err, h3.EngineLog())
	}
	t.Logf("FIGURE multihost: %s engine stopped: unreachable; started again: its Redis (restart unless-stopped) answers after %s", h3.Name, waitPong(h1, h3).Round(100*time.Millisecond))
}
