// Package engine is tier 5, the judge: the real Pulumi CLI, its Go language host and the Docker and
// random provider plugins deploy the real project (a copy of this checkout: Pulumi.yaml, the stack
// files, infra/ built by the language host) to the local Docker engine with a file:// backend in a
// temp dir, exactly as `make up` does. Where the toolchain is missing, the tier says so in one line
// (tests/tiers) and does not run.
package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/dockertest"
	"github.com/emailclient/emailclient-infra/tests/tiers"
)

// Plugins are the provider plugins the program needs, at the versions of the SDKs in go.mod (the CLI
// refuses other versions).
var Plugins = map[string]string{
	"docker": "github.com/pulumi/pulumi-docker/sdk/v4",
	"random": "github.com/pulumi/pulumi-random/sdk/v4",
}

// Missing says what of the toolchain is missing here ("" when nothing is).
func Missing() string { return missing() }

// Require runs the test only where the Pulumi CLI, pulumi-language-go, both provider plugins and a
// Docker engine are installed (tests/tiers: one line otherwise, a failure where the tier is required).
func Require(t testing.TB) {
	t.Helper()
	tiers.Require(t, tiers.Engine, missing())
}

// missing is findMissing, looked up once per test binary.
var missing = sync.OnceValue(findMissing)

func findMissing() string {
	if _, err := exec.LookPath("pulumi"); err != nil {
		return "the pulumi CLI is not on PATH (https://www.pulumi.com/docs/install/)"
	}
	if _, err := exec.LookPath("pulumi-language-go"); err != nil {
		return "pulumi-language-go (the Go language host) is not on PATH"
	}
	out, err := exec.Command("pulumi", "plugin", "ls", "--json").Output()
	if err != nil {
		return "pulumi plugin ls failed: " + err.Error()
	}
	var plugins []struct{ Name, Kind, Version string }
	if err := json.Unmarshal(out, &plugins); err != nil {
		return "pulumi plugin ls --json: " + err.Error()
	}
	for name, module := range Plugins {
		want := sdkVersion(module)
		found := false
		for _, p := range plugins {
			found = found || p.Kind == "resource" && p.Name == name && "v"+strings.TrimPrefix(p.Version, "v") == want
		}
		if !found {
			return fmt.Sprintf("the %s provider plugin %s is not installed (pulumi plugin install resource %s %s)", name, want, name, strings.TrimPrefix(want, "v"))
		}
	}
	return dockertest.EngineMissing()
}

// sdkVersion is the version go.mod requires of module ("" when it requires none).
func sdkVersion(module string) string {
	root, err := stacks.FindRoot()
	if err != nil {
		return ""
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == module {
			return f[1]
		}
	}
	return ""
}

// BaseImages are the base images of the Redis and worker images: the stacks build FROM redis:7-alpine
// and python:3.12-slim, which offline machines cannot pull. EMAILCLIENT_REDIS_BASE_IMAGE and
// EMAILCLIENT_WORKER_BASE_IMAGE choose others; by default the local Debian images of
// deployment/scripts/build-base-images.sh (built when missing).
func BaseImages(t testing.TB) (redis, worker string) {
	t.Helper()
	redis, worker = os.Getenv("EMAILCLIENT_REDIS_BASE_IMAGE"), os.Getenv("EMAILCLIENT_WORKER_BASE_IMAGE")
	if redis == "" {
		dockertest.EnsureBaseImages(t, "redis")
		redis = dockertest.RedisBase
	}
	if worker == "" {
		dockertest.EnsureBaseImages(t, "celery")
		worker = dockertest.CeleryBase
	}
	return redis, worker
}

// NewIsolatedProject is NewProject with every Docker object of the stack given a unique name (so
// nothing a user deployed on this engine is touched) and the base images of BaseImages. It returns
// the names' common part. Cleanup also removes the volumes destroy keeps on purpose.
func NewIsolatedProject(t testing.TB, stack string) (*Project, string) {
	t.Helper()
	sfx := strings.TrimPrefix(dockertest.MakeSuffix(t.Name()), "dt-")
	p := newLocalProject(t, stack, sfx)
	for key, value := range map[string]string{
		"container.name":      sfx + "-redis",
		"container.network":   sfx + "-net",
		"container.volume":    sfx + "-data",
		"container.imageName": "emailclient-redis:" + sfx,
		"emailService.name":   sfx + "-email",
	} {
		p.SetPath(key, value)
	}
	return p, sfx
}

// NewScopedProject is a project whose stack, named stack with profile, keeps the default Docker names
// (scoped by the stack: give it a name unique to the run), with the base images of BaseImages.
// Cleanup also removes the volumes destroy keeps and the images.
func NewScopedProject(t testing.TB, stack, profile string) *Project {
	t.Helper()
	p := newLocalProject(t, stack, stack)
	p.SetPath("profile", profile)
	return p
}

// newLocalProject is NewProject on this machine's engine (docker:host), with the base images of
// BaseImages; cleanup removes the volumes and images whose names contain marker.
func newLocalProject(t testing.TB, stack, marker string) *Project {
	t.Helper()
	redisBase, workerBase := BaseImages(t)
	// Registered before NewProject's destroy, so it runs after it (cleanups run last-in first-out).
	t.Cleanup(func() {
		// What destroy keeps on purpose (data volumes) or by design (images): this project's only.
		out, _ := exec.Command("docker", "volume", "ls", "-q", "--filter", "name="+marker).Output()
		for _, v := range strings.Fields(string(out)) {
			_ = exec.Command("docker", "volume", "rm", "-f", v).Run()
		}
		out, _ = exec.Command("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").Output()
		for _, image := range strings.Fields(string(out)) {
			if strings.Contains(image, marker) {
				_ = exec.Command("docker", "image", "rm", "-f", image).Run()
			}
		}
	})
	p := NewProject(t, stack)
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	p.Pulumi("config", "set", "--stack", stack, "docker:host", host)
	p.SetPath("container.baseImage", redisBase)
	p.SetPath("emailService.baseImage", workerBase)
	return p
}

// Env is the environment the project's pulumi commands run with (its backend and passphrase), for a
// tool that reads the stack as a user's shell would (e.g. redis-ops --stack).
func (p *Project) Env() []string { return slices.Clone(p.env) }

// Project is a throwaway copy of the project with its own file backend and passphrase.
type Project struct {
	t     testing.TB
	Dir   string
	Stack string
	env   []string
}

// projectFiles are what the engine and the program read from a checkout.
var projectFiles = []string{"Makefile", "Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml", "go.mod", "go.sum", "infra", "stacks", "components", "deployment"}

// NewProject copies the project into a temp dir and creates stack (dev, prod, or another name with
// the profile set by the caller) in a file:// backend there. Cleanup destroys the stack, removes it and
// the Docker objects that outlive destroy on purpose (volumes kept by RetainOnDelete).
func NewProject(t testing.TB, stack string) *Project {
	t.Helper()
	root, err := stacks.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range projectFiles {
		if out, err := exec.Command("cp", "-a", filepath.Join(root, f), dir).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v: %s", f, err, out)
		}
	}
	_ = os.RemoveAll(filepath.Join(dir, ".pulumi-state"))
	p := &Project{t: t, Dir: dir, Stack: stack}
	p.env = append(os.Environ(),
		"PULUMI_BACKEND_URL=file://"+t.TempDir(),
		"PULUMI_CONFIG_PASSPHRASE=engine-tier-"+stack,
		"PULUMI_SKIP_UPDATE_CHECK=true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true",
		"NO_COLOR=1",
	)
	p.Pulumi("stack", "init", stack, "--secrets-provider", "passphrase")
	t.Cleanup(func() {
		// A prod-profile stack protects its volumes; the test's own stack goes regardless.
		_, _ = p.run("pulumi", "state", "unprotect", "--all", "--yes", "--stack", stack)
		if out, err := p.run("pulumi", "destroy", "--yes", "--stack", stack); err != nil {
			t.Logf("cleanup: pulumi destroy: %v\n%s", err, Tail(out, 30))
		}
		_, _ = p.run("pulumi", "stack", "rm", "--yes", "--force", stack)
	})
	return p
}

// SetPath sets a config value by path (`pulumi config set --path KEY VALUE`), as a user sets one field
// of an object setting.
func (p *Project) SetPath(key, value string) {
	p.t.Helper()
	p.Pulumi("config", "set", "--path", "--stack", p.Stack, key, value)
}

// Pulumi runs the pulumi CLI in the project and fails the test on error, with the output's tail.
func (p *Project) Pulumi(args ...string) string {
	p.t.Helper()
	out, err := p.run("pulumi", args...)
	if err != nil {
		p.t.Fatalf("pulumi %s: %v\n%s", strings.Join(args, " "), err, Tail(out, 60))
	}
	return out
}

// Make runs a make target of the copy (`make up STACK=...`), as a user does.
func (p *Project) Make(args ...string) (string, error) {
	return p.run("make", args...)
}

// Output is a stack output (secrets shown: only for the test's own use, never logged).
func (p *Project) Output(name string) string {
	p.t.Helper()
	return strings.TrimSpace(p.Pulumi("stack", "output", "--stack", p.Stack, "--show-secrets", name))
}

// StateFile is the stack's checkpoint as the file backend stores it.
func (p *Project) StateFile() []byte {
	p.t.Helper()
	return []byte(p.Pulumi("stack", "export", "--stack", p.Stack))
}

// run runs a command in the project dir with the project's backend; output is streamed to the test log
// line by line (long work shows progress under -v) and returned.
func (p *Project) run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = p.Dir
	cmd.Env = p.env
	var buf bytes.Buffer
	w := io.MultiWriter(&buf, &lineLogger{t: p.t, prefix: name + " " + firstArg(args) + ": "})
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	err := cmd.Run()
	p.t.Logf("%s %s: %s (%v)", name, strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond), errOrOK(err))
	return buf.String(), err
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func errOrOK(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// lineLogger passes complete lines to t.Log when EMAILCLIENT_ENGINE_PROGRESS is set (make test sets
// nothing: the summary lines are enough there).
type lineLogger struct {
	t      testing.TB
	prefix string
	buf    []byte
}

func (l *lineLogger) Write(b []byte) (int, error) {
	if os.Getenv("EMAILCLIENT_ENGINE_PROGRESS") == "" {
		return len(b), nil
	}
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		if line := strings.TrimSpace(string(l.buf[:i])); line != "" {
			fmt.Fprintf(os.Stderr, "%s%s\n", l.prefix, line)
		}
		l.buf = l.buf[i+1:]
	}
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
