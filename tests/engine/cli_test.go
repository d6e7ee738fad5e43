package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/dockertest"
	"github.com/emailclient/emailclient-infra/tests/engine"
	"github.com/emailclient/emailclient-infra/tests/redistest"
)

// TestPlainPulumiUpFromAFreshClone is the command the project is used with, `pulumi up --stack dev`,
// with nothing of ours around it (no make, no deploy.sh, no Automation API): a fresh `git clone` of
// this checkout's committed HEAD, `pulumi login` to a file backend in a temp dir, `pulumi stack init
// dev` with the passphrase in PULUMI_CONFIG_PASSPHRASE, the two base images set with the README's
// `pulumi config set --path` commands (no registry here), then `pulumi up --stack dev --yes`; both
// containers healthy, `pulumi preview --stack dev --expect-no-changes`, `pulumi destroy --stack dev`.
//
// It execs the pulumi CLI, where the rest of the tier drives the engine through the Automation API:
// what it tests is that the CLI accepts the committed Pulumi.yaml and Pulumi.dev.yaml as a user runs
// them. The stack is literally dev; so that it shares nothing with a dev stack a user deployed on this
// engine, its Docker names and host port are set to unique ones (documented keys, as any user may).
func TestPlainPulumiUpFromAFreshClone(t *testing.T) {
	engine.Require(t)
	redisBase, workerBase := engine.BaseImages(t)
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	sfx := strings.TrimPrefix(dockertest.MakeSuffix(t.Name()), "dt-")
	port, err := redistest.FreePort()
	require.NoError(t, err)

	dir := filepath.Join(t.TempDir(), "emailclient-infra")
	out, err := exec.Command("git", "clone", "--quiet", root, dir).CombinedOutput()
	require.NoError(t, err, "git clone: %s", out)
	cli := newPulumiCLI(t, dir)

	cli.must("login", "file://"+t.TempDir())
	cli.must("stack", "init", "dev")
	// Registered after the stack exists: destroys what a failed run left, then removes the stack and
	// what destroy keeps on purpose (the data volume) or by design (the images).
	t.Cleanup(func() {
		_, _ = cli.run("destroy", "--stack", "dev", "--yes", "--skip-preview")
		_, _ = cli.run("stack", "rm", "dev", "--yes", "--force")
		engine.RemoveMarked(sfx)
	})
	// The README's two commands for a machine without registry access.
	cli.must("config", "set", "--stack", "dev", "--path", "container.baseImage", redisBase)
	cli.must("config", "set", "--stack", "dev", "--path", "emailService.baseImage", workerBase)
	cli.must("config", "set-all", "--stack", "dev", "--path",
		"--plaintext", "container.name="+sfx+"-redis", "--plaintext", "container.network="+sfx+"-net",
		"--plaintext", "container.volume="+sfx+"-data", "--plaintext", "container.imageName=emailclient-redis:"+sfx,
		"--plaintext", "emailService.name="+sfx+"-email", "--plaintext", "container.hostPort="+strconv.Itoa(port))

	start := time.Now()
	cli.must("up", "--stack", "dev", "--yes")
	t.Logf("FIGURE plain pulumi up --stack dev from a fresh clone (program built by the language host): %s", time.Since(start).Round(100*time.Millisecond))
	var outputs map[string]any
	require.NoError(t, json.Unmarshal([]byte(cli.must("stack", "output", "--stack", "dev", "--json")), &outputs))
	for _, name := range []string{"redisContainer", "emailServiceContainer"} {
		ctr, _ := outputs[name].(string)
		require.True(t, strings.HasPrefix(ctr, sfx), "output %s = %q", name, ctr)
		health, err := exec.Command("docker", "inspect", "--format", "{{.State.Health.Status}}", ctr).Output()
		require.NoError(t, err)
		assert.Equal(t, "healthy", strings.TrimSpace(string(health)), "%s at the end of pulumi up", ctr)
	}
	cli.must("preview", "--stack", "dev", "--expect-no-changes")
	cli.must("destroy", "--stack", "dev", "--yes")
	left, _ := exec.Command("docker", "ps", "-a", "-q", "--filter", "name="+sfx).Output()
	assert.Empty(t, strings.TrimSpace(string(left)), "containers left after pulumi destroy")
}

// pulumiCLI runs the pulumi CLI in a checkout as a user's shell does, with a PULUMI_HOME of its own
// (so `pulumi login` leaves the user's login alone) that uses the installed plugins.
type pulumiCLI struct {
	t   *testing.T
	dir string
	env []string
}

func newPulumiCLI(t *testing.T, dir string) *pulumiCLI {
	plugins := filepath.Join(os.Getenv("PULUMI_HOME"), "plugins")
	if os.Getenv("PULUMI_HOME") == "" {
		home, err := os.UserHomeDir()
		require.NoError(t, err)
		plugins = filepath.Join(home, ".pulumi", "plugins")
	}
	home := t.TempDir()
	require.NoError(t, os.Symlink(plugins, filepath.Join(home, "plugins")))
	env := []string{"PULUMI_HOME=" + home, "PULUMI_CONFIG_PASSPHRASE=plain-cli-test", "PULUMI_SKIP_UPDATE_CHECK=true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true", "NO_COLOR=1"}
	for _, kv := range os.Environ() {
		// The user's own backend and passphrase settings would win over the login and the test's passphrase.
		if k, _, _ := strings.Cut(kv, "="); k != "PULUMI_BACKEND_URL" && k != "PULUMI_ACCESS_TOKEN" && k != "PULUMI_CONFIG_PASSPHRASE_FILE" && k != "PULUMI_HOME" {
			env = append(env, kv)
		}
	}
	return &pulumiCLI{t: t, dir: dir, env: env}
}

// run runs `pulumi args...` and returns its stdout (stderr goes to the test log on failure).
func (c *pulumiCLI) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pulumi", args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), &cliError{args: args, err: err, output: engine.Tail(string(out)+stderr.String(), 40)}
	}
	return string(out), nil
}

// must is run failing the test on error.
func (c *pulumiCLI) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	require.NoError(c.t, err)
	return out
}

type cliError struct {
	args   []string
	err    error
	output string
}

func (e *cliError) Error() string {
	return "pulumi " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.output
}
