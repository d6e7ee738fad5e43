// Package engine is tier 5, the judge: the real Pulumi CLI, its Go language host and the Docker and
// random provider plugins deploy the real project (a copy of this checkout: Pulumi.yaml, the stack
// files, infra/ built by the language host) to the local Docker engine with a file:// backend in a
// temp dir, driven through Pulumi's Automation API (sdk/v3/go/auto: a LocalWorkspace on the copy) as a
// user's CI drives its stacks; `make up`, the users' own command, keeps tests of its own. Where the toolchain is missing, the tier says so in one line
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

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optremove"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

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
	return NewIsolatedProjectAt(t, stack, "")
}

// MissingRevision is "" when this checkout holds git revision (NewIsolatedProjectAt can build the
// project as it was), else why not, in one line.
func MissingRevision(revision string) string {
	root, err := stacks.FindRoot()
	if err != nil {
		return err.Error()
	}
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", revision+"^{commit}").CombinedOutput(); err != nil {
		return fmt.Sprintf("revision %s is not in this checkout (git cat-file: %v %s): no git history here", revision, err, strings.TrimSpace(string(out)))
	}
	return ""
}

// NewIsolatedProjectAt is NewIsolatedProject on the project as it was at git revision (a baseline
// measured against an earlier program in the same run); "" is the working tree.
func NewIsolatedProjectAt(t testing.TB, stack, revision string) (*Project, string) {
	t.Helper()
	sfx := strings.TrimPrefix(dockertest.MakeSuffix(t.Name()), "dt-")
	p := newLocalProject(t, stack, sfx, revision)
	p.SetPaths(map[string]string{
		"container.name":      sfx + "-redis",
		"container.network":   sfx + "-net",
		"container.volume":    sfx + "-data",
		"container.imageName": "emailclient-redis:" + sfx,
		"emailService.name":   sfx + "-email",
	})
	return p, sfx
}

// NewScopedProject is a project whose stack, named stack with profile, keeps the default Docker names
// (scoped by the stack: give it a name unique to the run), with the base images of BaseImages.
// Cleanup also removes the volumes destroy keeps and the images.
func NewScopedProject(t testing.TB, stack, profile string) *Project {
	t.Helper()
	p := newLocalProject(t, stack, stack, "")
	p.SetPath("profile", profile)
	return p
}

// newLocalProject is NewProject on this machine's engine (docker:host), with the base images of
// BaseImages, from revision as newProject; cleanup removes the volumes and images whose names contain
// marker.
func newLocalProject(t testing.TB, stack, marker, revision string) *Project {
	t.Helper()
	redisBase, workerBase := BaseImages(t)
	// Registered before NewProject's destroy, so it runs after it (cleanups run last-in first-out).
	// What destroy keeps on purpose (data volumes) or by design (images): this project's only.
	t.Cleanup(func() { RemoveMarked(marker) })
	p := newProject(t, stack, revision)
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	p.SetPaths(map[string]string{"docker:host": host, "container.baseImage": redisBase, "emailService.baseImage": workerBase})
	return p
}

// RemoveMarked removes the Docker volumes and images whose names contain marker.
func RemoveMarked(marker string) {
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
}

// Env is the environment the project's pulumi commands run with (its backend and passphrase), for a
// tool that reads the stack as a user's shell would (e.g. redis-ops --stack).
func (p *Project) Env() []string { return slices.Clone(p.env) }

// Project is a throwaway copy of the project with its own file backend and passphrase, driven by
// the Automation API.
type Project struct {
	t     testing.TB
	Dir   string
	Stack string
	env   []string
	stack auto.Stack
	// backend is the directory of the file:// backend.
	backend string
}

// projectFiles are what the engine and the program read from a checkout.
var projectFiles = []string{"Makefile", "Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml", "go.mod", "go.sum", "infra", "stacks", "components", "deployment"}

// NewProject copies the project into a temp dir and creates stack (dev, prod, or another name with
// the profile set by the caller) in a file:// backend there, through the Automation API: a
// LocalWorkspace on the copy, as a user's CI drives its stacks. It stages the redis-ops binary, as
// `make up` does (deployment/docker/ops/build.sh). Cleanup destroys the stack and removes it.
func NewProject(t testing.TB, stack string) *Project {
	t.Helper()
	return newProject(t, stack, "")
}

// newProject is NewProject on a copy of the working tree (revision ""), or of the project's files at
// git revision (git archive), which needs the repository's history.
func newProject(t testing.TB, stack, revision string) *Project {
	t.Helper()
	root, err := stacks.FindRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if revision != "" {
		extract := exec.Command("bash", "-c", `set -o pipefail; git -C "$1" archive --format=tar "$2" -- "${@:4}" | tar -x -C "$3"`,
			"archive", root, revision, dir)
		extract.Args = append(extract.Args, projectFiles...)
		if out, err := extract.CombinedOutput(); err != nil {
			t.Fatalf("the project at %s: %v: %s", revision, err, out)
		}
	} else {
		for _, f := range projectFiles {
			if out, err := exec.Command("cp", "-a", filepath.Join(root, f), dir).CombinedOutput(); err != nil {
				t.Fatalf("copy %s: %v: %s", f, err, out)
			}
		}
	}
	_ = os.RemoveAll(filepath.Join(dir, ".pulumi-state"))
	if out, err := exec.Command("bash", filepath.Join(dir, "deployment/docker/ops/build.sh")).CombinedOutput(); err != nil {
		t.Fatalf("stage redis-ops: %v: %s", err, out)
	}
	backend := t.TempDir()
	env := map[string]string{
		"PULUMI_BACKEND_URL":                          "file://" + backend,
		"PULUMI_CONFIG_PASSPHRASE":                    "engine-tier-" + stack,
		"PULUMI_SKIP_UPDATE_CHECK":                    "true",
		"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
		"NO_COLOR": "1",
	}
	p := &Project{t: t, Dir: dir, Stack: stack, env: os.Environ(), backend: backend}
	for k, v := range env {
		p.env = append(p.env, k+"="+v)
	}
	p.stack, err = auto.UpsertStackLocalSource(context.Background(), stack, dir, auto.EnvVars(env), auto.SecretsProvider("passphrase"))
	if err != nil {
		t.Fatalf("stack %s: %v", stack, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		// A prod-profile stack protects its volumes; the test's own stack goes regardless.
		_ = p.SetPathErr("protect", "false")
		if _, err := p.stack.Destroy(ctx, optdestroy.ProgressStreams(p.progress("destroy")), optdestroy.Refresh()); err != nil {
			t.Logf("cleanup: destroy: %v", err)
		}
		_ = p.stack.Workspace().RemoveStack(ctx, stack, optremove.Force())
	})
	return p
}

// SetPath sets a config value by path, as `pulumi config set --path KEY VALUE` does (a user setting
// one field of an object setting); it fails the test on error.
func (p *Project) SetPath(key, value string) {
	p.t.Helper()
	if err := p.SetPathErr(key, value); err != nil {
		p.t.Fatalf("config %s: %v", key, err)
	}
}

// SetPathErr is SetPath returning the error.
func (p *Project) SetPathErr(key, value string) error {
	return p.stack.SetConfigWithOptions(context.Background(), key, auto.ConfigValue{Value: value}, &auto.ConfigOptions{Path: true})
}

// SetPaths sets several config values by path in one call.
func (p *Project) SetPaths(values map[string]string) {
	p.t.Helper()
	cfg := auto.ConfigMap{}
	for k, v := range values {
		cfg[k] = auto.ConfigValue{Value: v}
	}
	if err := p.stack.SetAllConfigWithOptions(context.Background(), cfg, &auto.ConfigOptions{Path: true}); err != nil {
		p.t.Fatalf("config: %v", err)
	}
}

// Up deploys the stack (Stack.Up) with the engine's progress and events streamed into the test log,
// and returns the deploy's timeline; it fails the test on error.
func (p *Project) Up() *Timeline {
	p.t.Helper()
	tl, err := p.UpErr()
	if err != nil {
		p.t.Fatalf("up %s: %v", p.Stack, err)
	}
	return tl
}

// UpErr is Up returning the error (the engine's output is in it).
func (p *Project) UpErr() (*Timeline, error) {
	events, tl := p.watch()
	start := time.Now()
	res, err := p.stack.Up(context.Background(), optup.ProgressStreams(p.progress("up")), optup.EventStreams(events))
	tl.wait()
	tl.Wall = time.Since(start)
	p.t.Logf("up %s: %s (%s)", p.Stack, tl.Wall.Round(100*time.Millisecond), errOrOK(err))
	if err != nil {
		return tl, err
	}
	tl.Changes = res.Summary.ResourceChanges
	return tl, nil
}

// PreviewNoChanges previews the stack and fails the test unless the engine plans no change
// (optpreview.ExpectNoChanges): what a second `pulumi up` would do after a deploy.
func (p *Project) PreviewNoChanges() {
	p.t.Helper()
	res, err := p.stack.Preview(context.Background(), optpreview.ExpectNoChanges(), optpreview.ProgressStreams(p.progress("preview")))
	if err != nil {
		p.t.Fatalf("preview %s shows changes: %v", p.Stack, err)
	}
	p.t.Logf("preview %s: %v", p.Stack, res.ChangeSummary)
}

// RefreshNoChanges reads every resource back from the Docker engine (Stack.Refresh) and fails the test
// unless the state already matched what runs (optrefresh.ExpectNoChanges).
func (p *Project) RefreshNoChanges() {
	p.t.Helper()
	if _, err := p.stack.Refresh(context.Background(), optrefresh.ExpectNoChanges(), optrefresh.ProgressStreams(p.progress("refresh"))); err != nil {
		p.t.Fatalf("refresh %s shows changes: %v", p.Stack, err)
	}
}

// Destroy destroys the stack's resources (Stack.Destroy) and returns the error.
func (p *Project) Destroy() error {
	_, err := p.stack.Destroy(context.Background(), optdestroy.ProgressStreams(p.progress("destroy")))
	return err
}

// Make runs a make target of the copy (`make up STACK=...`), as a user does.
func (p *Project) Make(args ...string) (string, error) {
	return p.run("make", args...)
}

// Run runs a command in the copy with the project's backend and passphrase, as a user's shell there
// would (e.g. a script of another revision, for a benchmark's baseline).
func (p *Project) Run(name string, args ...string) (string, error) {
	return p.run(name, args...)
}

// Outputs are the stack's outputs (Stack.Outputs: values with their secret flag).
func (p *Project) Outputs() auto.OutputMap {
	p.t.Helper()
	out, err := p.stack.Outputs(context.Background())
	if err != nil {
		p.t.Fatalf("outputs: %v", err)
	}
	return out
}

// Output is a stack output as a string (secrets shown: only for the test's own use, never logged).
func (p *Project) Output(name string) string {
	p.t.Helper()
	v, ok := p.Outputs()[name]
	if !ok {
		p.t.Fatalf("no output %s", name)
	}
	if s, ok := v.Value.(string); ok {
		return s
	}
	return fmt.Sprint(v.Value)
}

// Export is the deployment the engine recorded (Stack.Export), as the state file holds it.
func (p *Project) Export() apitype.UntypedDeployment {
	p.t.Helper()
	d, err := p.stack.Export(context.Background())
	if err != nil {
		p.t.Fatalf("export: %v", err)
	}
	return d
}

// StateFile is the stack's checkpoint as the file backend stores it at rest (secrets encrypted; Export
// shows them decrypted).
func (p *Project) StateFile() []byte {
	p.t.Helper()
	var found []byte
	err := filepath.WalkDir(p.backend, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(path) == p.Stack+".json" && filepath.Base(filepath.Dir(filepath.Dir(path))) == "stacks" {
			found, err = os.ReadFile(path)
		}
		return err
	})
	if err != nil || found == nil {
		p.t.Fatalf("no checkpoint of %s under %s: %v", p.Stack, p.backend, err)
	}
	return found
}

// progress is a writer of the engine's progress lines into the test log under EMAILCLIENT_ENGINE_PROGRESS.
func (p *Project) progress(op string) io.Writer {
	return &lineLogger{t: p.t, prefix: p.Stack + " " + op + ": "}
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
