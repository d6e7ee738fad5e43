// Package engine is the Pulumi-engine tier: the Automation API previews, deploys, re-previews and
// destroys a throwaway stack of the real program (inline, with the dev profile) against the local
// Docker engine, with a file:// backend in a temp dir. It needs the pulumi CLI and the Docker provider
// plugin, which offline machines cannot fetch: it then says so in one line and skips.
package engine_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/stacks"
)

// requireEngine skips (one line) unless the pulumi CLI, its Docker provider plugin and a Docker
// engine are all present.
func requireEngine(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("pulumi"); err != nil {
		t.Skip("tier pulumi-engine: not run: the pulumi CLI is not installed")
	}
	out, err := exec.Command("pulumi", "plugin", "ls").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "docker") {
		t.Skip("tier pulumi-engine: not run: the Pulumi Docker provider plugin is not installed (pulumi plugin install resource docker)")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skip("tier pulumi-engine: not run: no Docker engine (docker info failed)")
	}
}

func TestUpPreviewDestroyThrowawayStack(t *testing.T) {
	requireEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	root, err := stacks.FindRoot()
	require.NoError(t, err)
	// The workspace writes Pulumi.<stack>.yaml into its WorkDir: work on a copy of what the program
	// reads (the project file and the build contexts), never in the checkout.
	work := t.TempDir()
	require.NoError(t, exec.Command("cp", "-r", filepath.Join(root, "Pulumi.yaml"), filepath.Join(root, "deployment"), work).Run())
	suffix := randomSuffix(t)
	name := "engine-" + suffix
	ws := []auto.LocalWorkspaceOption{
		auto.WorkDir(work),
		auto.SecretsProvider("passphrase"),
		auto.EnvVars(map[string]string{
			"PULUMI_BACKEND_URL":       "file://" + t.TempDir(),
			"PULUMI_CONFIG_PASSPHRASE": "engine-test-" + suffix,
		}),
	}
	stack, err := auto.UpsertStackInlineSource(ctx, name, stacks.Project, stacks.Program, ws...)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = stack.Destroy(context.Background(), optdestroy.Message("cleanup"))
		_ = stack.Workspace().RemoveStack(context.Background(), name)
	})
	// Unique names, no host port: the test must not collide with a deployed dev stack.
	for key, value := range map[string]string{
		"profile":      "dev",
		"container":    `{"name":"redis-` + suffix + `","network":"net-` + suffix + `","volume":"data-` + suffix + `","imageName":"emailclient-redis:` + suffix + `","hostPort":0}`,
		"emailService": `{"name":"email-` + suffix + `"}`,
	} {
		require.NoError(t, stack.SetConfig(ctx, stacks.Project+":"+key, auto.ConfigValue{Value: value}))
	}
	_, err = stack.Preview(ctx)
	require.NoError(t, err)
	_, err = stack.Up(ctx)
	require.NoError(t, err)
	// A second preview of an unchanged program must change nothing (pulumi-docker#1272, #1651).
	_, err = stack.Preview(ctx, optpreview.ExpectNoChanges())
	require.NoError(t, err)
	_, err = stack.Up(ctx, optup.ExpectNoChanges())
	require.NoError(t, err)
	_, err = stack.Destroy(ctx)
	require.NoError(t, err)
	// The data volume outlives destroy on purpose (RetainOnDelete): remove it here.
	_ = exec.Command("docker", "volume", "rm", "data-"+suffix).Run()
}

func randomSuffix(t *testing.T) string {
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
