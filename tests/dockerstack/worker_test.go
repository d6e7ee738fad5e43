package dockerstack

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/tests/dockertest"
)

// TestStalledWorkerIsReplacedWithoutAPerson deploys dev with the worker's watchdog at 15s, holds every
// Redis client for 45s (CLIENT PAUSE: the worker takes nothing from Redis, as in a consumer stalled
// after a broker restart) and requires that the worker container is restarted by Docker alone (the
// worker stops itself, the restart policy starts it), turns healthy again and runs tasks.
func TestStalledWorkerIsReplacedWithoutAPerson(t *testing.T) {
	dockertest.Require(t)
	dockertest.EnsureBaseImages(t, "redis", "celery")
	cfg := localBases()
	cfg["emailService"] = `{"baseImage":"` + dockertest.CeleryBase + `","stallExitSeconds":15}`
	res := declare(t, "dev", cfg)
	d, took := apply(t, res, dockertest.ApplyOptions{})
	t.Logf("FIGURE dev stack with the worker waited on: apply until the email-service is healthy: %s", took.Round(100*time.Millisecond))
	if h := d.Health(emailCtr); h != "healthy" {
		t.Fatalf("email-service health after apply = %q, want healthy (wait: true)", h)
	}
	checkWorkerHardening(t, d)
	restarts := func() int64 { return num(get(d.Inspect(emailCtr), "RestartCount")) }
	before := restarts()

	if out, err := redisCLI(t, d, "CLIENT", "PAUSE", "45000", "ALL"); err != nil {
		t.Fatalf("CLIENT PAUSE: %v: %s", err, out)
	}
	start := time.Now()
	for restarts() == before {
		if time.Since(start) > 90*time.Second {
			t.Fatalf("the stalled worker was not restarted within 90s (restart count %d); log tail:\n%s", restarts(), tailLines(d.Logs(emailCtr), 20))
		}
		time.Sleep(time.Second)
	}
	t.Logf("FIGURE stalled worker (watchdog 15s): restarted by Docker %s after the stall began, no person involved", time.Since(start).Round(time.Second))
	if log := d.Logs(emailCtr); !strings.Contains(log, "stopping so that the restart policy starts a fresh worker") {
		t.Errorf("the worker log does not say why it stopped:\n%s", tailLines(log, 20))
	}
	d.WaitHealthy(t, emailCtr, 120*time.Second)
	t.Logf("FIGURE healthy again %s after the stall began (the pause lasted 45s)", time.Since(start).Round(time.Second))
	out, err := d.Exec(t, emailCtr, "python3", "-m", "emailworker.client", "send", "--count", "3", "--timeout", "60")
	noSecrets(t, "client output", out)
	if err != nil || !strings.Contains(out, `"completed": 3`) {
		t.Fatalf("round trip after the restart: %v: %s", err, strings.TrimSpace(out))
	}
}

// checkWorkerHardening asserts the email-service's docker inspect: non-root, no capabilities, no
// privilege escalation, read-only root with a small /tmp, memory without swap, an nproc cap and the
// heartbeat probe.
func checkWorkerHardening(t *testing.T, d *dockertest.Deployment) {
	t.Helper()
	insp := d.Inspect(emailCtr)
	hc := assertLockedDown(t, emailCtr, insp, nil) // the image's user
	user, _ := get(insp, "Config", "User").(string)
	if num(hc["Memory"]) != 1<<30 || num(hc["MemorySwap"]) != 1<<30 {
		t.Errorf("Memory/MemorySwap = %v/%v, want 1 GiB without swap", hc["Memory"], hc["MemorySwap"])
	}
	if _, ok := hc["Tmpfs"].(map[string]any)["/tmp"]; !ok {
		t.Errorf("Tmpfs = %v, want /tmp", hc["Tmpfs"])
	}
	ulimits := fmt.Sprint(hc["Ulimits"])
	if !strings.Contains(ulimits, "nproc") {
		t.Errorf("Ulimits = %s, want nproc", ulimits)
	}
	probe := strs(get(insp, "Config", "Healthcheck", "Test"))
	if !slices.Contains(probe, components.WorkerAliveCommand) {
		t.Errorf("Healthcheck = %v, want the heartbeat probe", probe)
	}
	t.Logf("FIGURE email-service docker inspect: User=%s ReadonlyRootfs=%v Tmpfs=%v CapDrop=%v SecurityOpt=%v Memory=%v MemorySwap=%v Ulimits=%s Healthcheck=%v",
		user, hc["ReadonlyRootfs"], hc["Tmpfs"], hc["CapDrop"], hc["SecurityOpt"], hc["Memory"], hc["MemorySwap"], ulimits, probe)
}
