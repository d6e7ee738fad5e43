package engine_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/dockertest"
	"github.com/emailclient/emailclient-infra/tests/engine"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

func newStack(t *testing.T, stack string) (*engine.Project, string) {
	engine.Require(t)
	return engine.NewIsolatedProject(t, stack)
}

// newDevStack is a dev stack (newStack) with Redis published on a free port of 127.0.0.1, as dev is.
func newDevStack(t *testing.T) (*engine.Project, string, int) {
	p, sfx := newStack(t, "dev")
	port, err := redistest.FreePort()
	require.NoError(t, err)
	p.SetPath("container.hostPort", strconv.Itoa(port))
	return p, sfx, port
}

// prodDataAndImage gives a prod-profile stack its two documented settings: a data host path (created
// as the README says, under /srv: the stack refuses directories the host empties at boot) and the
// email-service image (the reference worker, built like a user's image, tagged with marker, run by its
// image ID as prod requires an image pinned by content). It returns the data path.
func prodDataAndImage(t *testing.T, p *engine.Project, marker string) string {
	parent, err := os.MkdirTemp("/srv", "emailclient-engine-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	data := filepath.Join(parent, "redis")
	require.NoError(t, os.Mkdir(data, 0o700))
	require.NoError(t, os.Chown(data, 999, 1000), "the documented `install -d -o 999 -g 1000 -m 0700`")
	p.SetPath("container.dataHostPath", data)
	image := "emailclient-email-service:" + marker
	_, workerBase := engine.BaseImages(t)
	// The user's own image, built here from the reference worker as the guide says (context deployment/).
	build := exec.Command("docker", "build", "-q", "--build-arg", "BASE_IMAGE="+workerBase, "-t", image,
		"-f", filepath.Join(p.Dir, stacks.WorkerDockerfile), filepath.Join(p.Dir, stacks.WorkerBuildContext))
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the email-service image: %s", out)
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", image).Run() })
	// Prod runs images by content: the local image ID pins it on this single host.
	id, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", image).Output()
	require.NoError(t, err)
	p.SetPath("emailService.image", strings.TrimSpace(string(id)))
	return data
}

// TestDevStack: dev deployed through the Automation API, then everything a user relies on (see check).
func TestDevStack(t *testing.T) {
	p, sfx, port := newDevStack(t)
	check(t, p, "dev", sfx, func(hostConfig map[string]any) {
		bindings := hostConfig["PortBindings"].(map[string]any)["6379/tcp"].([]any)
		assert.Equal(t, "127.0.0.1", bindings[0].(map[string]any)["HostIp"], "published on loopback only")
		assert.Equal(t, strconv.Itoa(port), bindings[0].(map[string]any)["HostPort"], "on the configured port")
	})
}

// TestProdStack: prod with its two documented settings (the data host path and the email-service
// image; here the reference worker, built like a user's image), limits, backups and metrics.
func TestProdStack(t *testing.T) {
	p, sfx := newStack(t, "prod")
	data := prodDataAndImage(t, p, sfx)
	p.SetPath("operations.backup.volume", sfx+"-backups")
	check(t, p, "prod", sfx, func(hostConfig map[string]any) {
		assert.Equal(t, float64(2<<30), hostConfig["Memory"], "2gb memory")
		assert.Equal(t, float64(2<<30), hostConfig["MemorySwap"], "no swap")
		assert.Equal(t, float64(2e9), hostConfig["NanoCpus"], "2 CPUs")
		assert.True(t, slices.ContainsFunc(hostConfig["Binds"].([]any), func(b any) bool { return strings.HasPrefix(b.(string), data+":/data") }),
			"data on the host path: %v", hostConfig["Binds"])
	})
}

// TestSentinelStack: the Sentinel topology (a primary, 2 replicas, 3 Sentinels) with the dev profile,
// its Redis image built on the busybox base (the userland of redis:7-alpine, the stacks' default;
// EMAILCLIENT_REDIS_BASE_IMAGE, when set, chooses another): the entrypoint's node and Sentinel modes
// and both healthchecks run under busybox, at the first up and again when the password rotation
// replaces the data nodes on their volumes (each finds its copy).
func TestSentinelStack(t *testing.T) {
	p, sfx := newStack(t, "sentinel")
	p.SetPaths(map[string]string{"profile": "dev", "topology.mode": "sentinel", "container.hostPort": "0"})
	busybox := os.Getenv("EMAILCLIENT_REDIS_BASE_IMAGE") == ""
	if busybox {
		dockertest.EnsureBaseImages(t, "busybox")
		p.SetPath("container.baseImage", dockertest.RedisBusybox)
	}
	check(t, p, "sentinel", sfx, func(map[string]any) {
		if busybox {
			out, err := exec.Command("docker", "exec", p.Output("redisContainer"), "readlink", "/bin/sh").CombinedOutput()
			assert.Equal(t, "/bin/busybox", strings.TrimSpace(string(out)), "/bin/sh of the deployed Redis (%v)", err)
		}
	})
}

// check deploys through the Automation API (Stack.Up), then: a second preview and a refresh show no
// change; the resource config the engine recorded (Stack.Export) is what the profile promises
// (assertRecorded); no password in plain text in the state; Redis runs hardened; 5 Celery tasks
// round-trip through the deployed email-service; a password rotation deploys, changes nothing more on a
// further preview, tasks still round-trip and the old password is refused; destroy removes every
// container. stackChecks gets the deployed Redis container's HostConfig for what is particular to the
// stack.
func check(t *testing.T, p *engine.Project, profile, sfx string, stackChecks func(hostConfig map[string]any)) {
	tl := p.Up()
	t.Logf("FIGURE pulumi up %s (Automation API): %v; %s", p.Stack, *tl.Changes, tl.Describe(p.Export()))
	p.PreviewNoChanges()
	p.RefreshNoChanges()

	celeryPw := passwordOf(t, p.Output("celeryBrokerUrl"))
	opsPw := p.Output("opsPassword")
	state := p.StateFile()
	for name, pw := range map[string]string{"celery": celeryPw, "ops": opsPw} {
		require.GreaterOrEqual(t, len(pw), 32)
		assert.NotContains(t, string(state), pw, "the %s password is in the state in plain text", name)
	}
	assertRecorded(t, profile, parseRecorded(t, p.Export()))

	redis := p.Output("redisContainer")
	insp := inspect(t, redis)
	hc := insp["HostConfig"].(map[string]any)
	assert.Equal(t, true, hc["ReadonlyRootfs"], "read-only root filesystem")
	assert.Equal(t, []any{"ALL"}, hc["CapDrop"])
	assert.Equal(t, "999:1000", insp["Config"].(map[string]any)["User"])
	assert.NotContains(t, fmt.Sprint(insp), opsPw, "no password in the container's config")
	stackChecks(hc)

	email := p.Output("emailServiceContainer")
	roundTrip(t, email)
	refused(t, redis, celeryPw, false)

	p.SetPath("passwordRotation", "1")
	tl = p.Up()
	t.Logf("FIGURE password rotation (Automation API up): %s", tl.Wall.Round(100*time.Millisecond))
	p.PreviewNoChanges()
	require.NotEqual(t, celeryPw, passwordOf(t, p.Output("celeryBrokerUrl")), "rotated")
	roundTrip(t, email)
	refused(t, redis, celeryPw, true)

	if profile == "prod" {
		// Prod protects its volumes: destroy stops before deleting anything, until protect is lifted.
		err := p.Destroy()
		require.Error(t, err, "destroy of a protected prod stack must fail")
		assert.Contains(t, err.Error(), "protected", "the error says why")
		p.SetPath("protect", "false")
		p.Up()
	}
	require.NoError(t, p.Destroy())
	left, _ := exec.Command("docker", "ps", "-a", "-q", "--filter", "name="+sfx).Output()
	assert.Empty(t, strings.TrimSpace(string(left)), "containers left after destroy")
}

// roundTrip sends 5 tasks from inside the deployed email-service container (its own env: the URLs the
// program wired) and requires all 5 completed by its worker.
func roundTrip(t *testing.T, container string) {
	t.Helper()
	var res celerytest.Result
	var out []byte
	var err error
	// The worker may still be connecting right after a deploy: the client waits up to 90 s.
	out, err = exec.Command("docker", "exec", container, "python3", "-m", "emailworker.client", "send", "--count", "5", "--timeout", "90").Output()
	require.NoError(t, json.Unmarshal([]byte(lastLine(string(out))), &res), "client output (%v): %s\nlogs:\n%s", err, out, logs(container))
	require.Equal(t, 5, res.Completed, "tasks completed through the deployed email-service: %+v\nlogs:\n%s", res, logs(container))
	t.Logf("FIGURE celery round trip through %s: 5 of 5 in %.2fs", container, res.RoundtripSeconds)
}

// refused checks that the celery password pw is (wantRefused) or is not refused by Redis, without
// putting it on a command line (REDISCLI_AUTH passed by name from this process's env).
func refused(t *testing.T, container, pw string, wantRefused bool) {
	t.Helper()
	cmd := exec.Command("docker", "exec", "-e", "REDISCLI_AUTH", container, "redis-cli", "--no-auth-warning", "--user", "celery", "ping")
	cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+pw)
	out, _ := cmd.CombinedOutput()
	reply := strings.TrimSpace(string(out))
	if wantRefused {
		assert.Contains(t, reply, "WRONGPASS", "the old password after rotation")
	} else {
		assert.Equal(t, "PONG", reply)
	}
}

func passwordOf(t *testing.T, brokerURL string) string {
	t.Helper()
	first := strings.Split(brokerURL, ";")[0]
	u, err := url.Parse(first)
	require.NoError(t, err, "the broker URL does not parse")
	pw, ok := u.User.Password()
	require.True(t, ok, "the broker URL has a password")
	return pw
}

func inspect(t *testing.T, container string) map[string]any {
	t.Helper()
	out, err := exec.Command("docker", "inspect", container).Output()
	require.NoError(t, err)
	var insp []map[string]any
	require.NoError(t, json.Unmarshal(out, &insp))
	require.Len(t, insp, 1)
	return insp[0]
}

func logs(container string) string {
	out, _ := exec.Command("docker", "logs", "--tail", "40", container).CombinedOutput()
	return string(out)
}
