// Package dockertest creates, on a real Docker engine and with the docker CLI, exactly the resources a
// Pulumi program declares (as captured by a mock harness), so a test can check that they build, start,
// become healthy and talk to each other, without retyping the declared settings (BRIEF §5 tier 4).
//
// Rules, in short:
//   - Every declared input of a docker:index/{image,network,volume,container} resource is translated to a
//     docker CLI flag, or is explicitly listed as provider-only (ignoredContainerFields); any other field
//     fails the test, so nothing is silently dropped.
//   - Names get a unique suffix (container, network, volume names, image tags); network aliases do not.
//   - A container's `image` is resolved in this order: ApplyOptions.ImageFor; a declared Image whose
//     imageName (with or without tag/digest) or logical name equals the value; the only declared Image.
//   - Host paths (volumes[].hostPath, bind mounts) become fresh temp dirs unless ApplyOptions.HostPaths maps
//     them; published ports get ephemeral host ports unless ApplyOptions.KeepHostPorts.
//   - Non-docker resources (random:*, components, providers) create nothing.
//   - t.Cleanup removes everything created, even when the test fails.
package dockertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/tiers"
)

// Resource is one resource the program declared: its type token, logical name and inputs.
type Resource struct {
	Type   string
	Name   string
	Inputs resource.PropertyMap
}

// Type tokens dockertest creates.
const (
	TypeImage     = "docker:index/image:Image"
	TypeNetwork   = "docker:index/network:Network"
	TypeVolume    = "docker:index/volume:Volume"
	TypeContainer = "docker:index/container:Container"
)

// LabelKey is set on every container, network and volume dockertest creates (value: the suffix).
const LabelKey = "emailclient.dockertest"

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Suffix makes every name unique; default: from t.Name() plus random hex.
	Suffix string
	// BuildArgOverrides replace or add build args of every image build, e.g.
	// {"BASE_IMAGE": "local/redis-base:bookworm"}.
	BuildArgOverrides map[string]string
	// ImageFor maps a container (logical or declared name) to an Image resource (logical name or
	// imageName) or to a literal image reference; "" falls back to the default rules.
	ImageFor func(container string) string
	// RepoRoot is the directory build contexts and dockerfiles are relative to; default: the directory
	// holding go.mod, found by walking up from the working directory.
	RepoRoot string
	// HostPaths maps a declared host path to a real one; unmapped host paths become fresh temp dirs
	// (mode 0755, owned by the test user), removed at cleanup.
	HostPaths map[string]string
	// KeepHostPorts publishes ports on the declared external port; by default an ephemeral host port is
	// used (see Deployment.HostPort), so tests do not collide with anything on the machine.
	KeepHostPorts bool
	// HealthyTimeout is used for `wait: true` when no waitTimeout is declared (default 120s).
	HealthyTimeout time.Duration
	// DependsOn, when set, gives the logical names each container (logical name) depends on, e.g. a
	// declared.Resource's DependsOn; names that are not declared containers are ignored. Containers are
	// then created as Pulumi creates them, each as soon as what it depends on is done (created, or
	// healthy with `wait: true`): every container that can be created is created and started before
	// any is waited for, so containers that only become healthy together (Sentinels and their quorum,
	// a worker that finds its primary through them) can. A dependency cycle fails the test. When nil,
	// containers are created and awaited one by one in declaration order.
	DependsOn map[string][]string
}

// Require skips the test (one line) when no Docker engine answers; it fails instead when the docker
// tier is required (see tests/tiers).
func Require(t testing.TB) {
	t.Helper()
	tiers.Require(t, tiers.Docker, engineMissing())
}

// EngineMissing says why no Docker engine answers here ("" when one does).
func EngineMissing() string { return engineMissing() }

// engineMissing says why no Docker engine answers ("" when one does), looked up once per test binary.
var engineMissing = sync.OnceValue(func() string {
	if _, err := exec.LookPath("docker"); err != nil {
		return "no docker CLI on PATH"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput()
	if err != nil {
		return "no Docker engine reachable (docker info: " + firstLine(string(out), err) + ")"
	}
	return ""
})

func firstLine(out string, err error) string {
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return err.Error()
}

// RepoRoot walks up from the working directory to the directory holding go.mod.
func RepoRoot() (string, error) { return stacks.FindRoot() }

// Base image tags built by deployment/scripts/build-base-images.sh. RedisBusybox stands in for the
// stacks' default base, redis:7-alpine: its /bin/sh and every tool are busybox applets.
const (
	RedisBase    = "local/redis-base:bookworm"
	CeleryBase   = "local/celery-base:bookworm"
	RedisBusybox = "local/redis-busybox:bookworm"
)

// EnsureBaseImages runs deployment/scripts/build-base-images.sh for each of which ("redis", "celery",
// "busybox") whose image is missing (about 1.5 minutes each the first time; cached by tag afterwards).
func EnsureBaseImages(t testing.TB, which ...string) {
	t.Helper()
	Require(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range which {
		tag := map[string]string{"redis": RedisBase, "celery": CeleryBase, "busybox": RedisBusybox}[w]
		if tag == "" {
			t.Fatalf("EnsureBaseImages: unknown base %q (redis, celery or busybox)", w)
		}
		if exec.Command("docker", "image", "inspect", tag).Run() == nil {
			continue
		}
		start := time.Now()
		cmd := exec.Command("bash", filepath.Join(root, "deployment/scripts/build-base-images.sh"), w)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("build-base-images.sh %s: %v\n%s", w, err, out)
		}
		t.Logf("built %s in %s", tag, time.Since(start).Round(time.Second))
	}
}

// ---------------------------------------------------------------------------------------------------
// Deployment

// Deployment is what Apply created.
type Deployment struct {
	t        testing.TB
	suffix   string
	opts     ApplyOptions
	root     string
	work     string
	secrets  map[string]bool
	images   []*imageRes
	networks []*netRes
	volumes  []*volRes
	ctrs     []*ctrRes
	byName   map[string]*ctrRes // logical and declared names

	mu       sync.Mutex
	created  []func() // cleanup actions, run in reverse
	hostDirs map[string]string
}

// Suffix is the unique suffix of this deployment's names.
func (d *Deployment) Suffix() string { return d.suffix }

// Apply creates the declared resources on the engine, in dependency order: images, networks, volumes,
// then containers in declaration order (or by dependency level, see ApplyOptions.DependsOn). It translates everything first and fails, listing every
// problem, before creating anything.
func Apply(t testing.TB, resources []Resource, opts ApplyOptions) *Deployment {
	t.Helper()
	Require(t)
	d := &Deployment{t: t, opts: opts, secrets: map[string]bool{}, byName: map[string]*ctrRes{}, hostDirs: map[string]string{}}
	d.suffix = opts.Suffix
	if d.suffix == "" {
		d.suffix = MakeSuffix(t.Name())
	}
	d.root = opts.RepoRoot
	if d.root == "" {
		var err error
		if d.root, err = RepoRoot(); err != nil {
			t.Fatal(err)
		}
	}
	work, err := os.MkdirTemp("", "dockertest-"+d.suffix+"-")
	if err != nil {
		t.Fatal(err)
	}
	d.work = work
	t.Cleanup(d.cleanup)

	// Phase 1: translate everything.
	var errs []string
	var ctrInputs []Resource
	for _, r := range resources {
		switch {
		case r.Type == TypeImage:
			d.images = append(d.images, d.translateImage(r, &errs))
		case r.Type == TypeNetwork:
			d.networks = append(d.networks, d.translateNetwork(r, &errs))
		case r.Type == TypeVolume:
			d.volumes = append(d.volumes, d.translateVolume(r, &errs))
		case r.Type == TypeContainer:
			ctrInputs = append(ctrInputs, r)
		case strings.HasPrefix(r.Type, "docker:"):
			errs = append(errs, fmt.Sprintf("%s (%s): dockertest cannot create this resource type", r.Name, r.Type))
		default:
			// random:*, components, providers: nothing to create on the engine.
		}
	}
	// Container names first (volumes-from may refer to another container).
	for _, r := range ctrInputs {
		c := &ctrRes{logical: r.Name}
		if v, ok := r.Inputs["name"]; ok {
			if s, isStr := plain(v, false, d.secrets).(string); isStr && s != "" {
				c.declared = s
			}
		}
		if c.declared == "" {
			c.declared = r.Name
		}
		c.real = c.declared + "-" + d.suffix
		d.ctrs = append(d.ctrs, c)
		d.byName[c.logical] = c
		d.byName[c.declared] = c
	}
	for i, r := range ctrInputs {
		d.translateContainer(d.ctrs[i], r, &errs)
	}
	if len(errs) > 0 {
		t.Fatalf("dockertest: cannot create the declared resources:%s", d.redact(joinErrs(errs)))
	}

	// Phase 2: create.
	for _, im := range d.images {
		d.buildImage(t, im)
	}
	for _, n := range d.networks {
		d.track(func() { d.quiet("network", "rm", n.real) })
		d.must(t, "network "+n.logical, append([]string{"network", "create"}, n.args...)...)
	}
	for _, v := range d.volumes {
		d.track(func() { d.quiet("volume", "rm", "-f", v.real) })
		d.must(t, "volume "+v.logical, append([]string{"volume", "create"}, v.args...)...)
	}
	if opts.DependsOn == nil {
		for _, c := range d.ctrs {
			d.createAndStart(t, c)
		}
		return d
	}
	if _, err := d.levels(opts.DependsOn); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	// As the engine does: a container is created as soon as every container it depends on is done;
	// one that is not waited for is done once created (and started), one with `wait: true` once
	// healthy. Each wave creates and starts all it can before it waits for any.
	done := map[*ctrRes]bool{}
	ready := func(c *ctrRes) bool {
		for _, name := range opts.DependsOn[c.logical] {
			if dep := d.byName[name]; dep != nil && dep != c && !done[dep] {
				return false
			}
		}
		return true
	}
	// dependedOn: a container not yet done declares c as a dependency. A waited-for container nothing
	// depends on (the email-service alongside Redis) is awaited at the end, as the engine goes on
	// creating the rest meanwhile.
	dependedOn := func(c *ctrRes) bool {
		for _, o := range d.ctrs {
			if done[o] {
				continue
			}
			for _, name := range opts.DependsOn[o.logical] {
				if d.byName[name] == c && o != c {
					return true
				}
			}
		}
		return false
	}
	startedAt := map[*ctrRes]time.Time{}
	var deferred []*ctrRes
	for len(done)+len(deferred) < len(d.ctrs) {
		var waiting []*ctrRes
		for progress := true; progress; {
			progress = false
			for _, c := range d.ctrs {
				if _, started := startedAt[c]; done[c] || started || !ready(c) {
					continue
				}
				d.create(t, c)
				startedAt[c] = time.Now()
				d.startNoWait(t, c)
				if c.start && c.wait {
					waiting = append(waiting, c)
				} else {
					d.awaitStarted(t, c, startedAt[c])
					done[c] = true
				}
				progress = true
			}
		}
		for _, c := range waiting {
			if !dependedOn(c) {
				deferred = append(deferred, c)
				continue
			}
			d.awaitStarted(t, c, startedAt[c])
			done[c] = true
		}
	}
	for _, c := range deferred {
		d.awaitStarted(t, c, startedAt[c])
		done[c] = true
	}
	return d
}

// levels groups the containers by dependency level (level 0 depends on no declared container), each
// level in declaration order; Apply uses it to refuse a dependency cycle before creating anything.
func (d *Deployment) levels(deps map[string][]string) ([][]*ctrRes, error) {
	level := map[*ctrRes]int{}
	const visiting = -1
	var visit func(c *ctrRes, path []string) (int, error)
	visit = func(c *ctrRes, path []string) (int, error) {
		if l, ok := level[c]; ok {
			if l == visiting {
				return 0, fmt.Errorf("container dependency cycle: %s", strings.Join(append(path, c.logical), " -> "))
			}
			return l, nil
		}
		level[c] = visiting
		l := 0
		for _, name := range deps[c.logical] {
			dep := d.byName[name]
			if dep == nil || dep == c {
				continue
			}
			dl, err := visit(dep, append(path, c.logical))
			if err != nil {
				return 0, err
			}
			l = max(l, dl+1)
		}
		level[c] = l
		return l, nil
	}
	var out [][]*ctrRes
	for _, c := range d.ctrs {
		if _, err := visit(c, nil); err != nil {
			return nil, err
		}
	}
	for _, c := range d.ctrs {
		for len(out) <= level[c] {
			out = append(out, nil)
		}
		out[level[c]] = append(out[level[c]], c)
	}
	return out, nil
}

// MakeSuffix returns a docker-name-safe unique suffix derived from name.
func MakeSuffix(name string) string {
	s := strings.ToLower(name)
	s = regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(s, "-")
	s = strings.Trim(s, "-")
	if len(s) > 20 {
		s = strings.Trim(s[len(s)-20:], "-")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	if s == "" {
		s = "t"
	}
	return "dt-" + s + "-" + hex.EncodeToString(b)
}

// track registers a cleanup action (run in reverse order, even when the test fails).
func (d *Deployment) track(f func()) {
	d.mu.Lock()
	d.created = append(d.created, f)
	d.mu.Unlock()
}

func (d *Deployment) cleanup() {
	d.mu.Lock()
	fs := d.created
	d.created = nil
	d.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	// Belt and braces: anything labelled with our suffix.
	filter := "label=" + LabelKey + "=" + d.suffix
	if ids := strings.Fields(d.quiet("ps", "-aq", "--filter", filter)); len(ids) > 0 {
		d.quiet(append([]string{"rm", "-f", "-v"}, ids...)...)
	}
	if ids := strings.Fields(d.quiet("network", "ls", "-q", "--filter", filter)); len(ids) > 0 {
		d.quiet(append([]string{"network", "rm"}, ids...)...)
	}
	if ids := strings.Fields(d.quiet("volume", "ls", "-q", "--filter", filter)); len(ids) > 0 {
		d.quiet(append([]string{"volume", "rm", "-f"}, ids...)...)
	}
	if d.work != "" {
		if err := os.RemoveAll(d.work); err != nil {
			d.t.Logf("dockertest cleanup: %v", err)
		}
	}
}

// docker runs the docker CLI.
func (d *Deployment) docker(ctx context.Context, stdin []byte, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), "DOCKER_CLI_HINTS=false")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (d *Deployment) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, errOut, err := d.docker(ctx, nil, args...)
	if err != nil {
		return out, fmt.Errorf("docker %s: %v: %s", d.redact(strings.Join(args, " ")), err, d.redact(strings.TrimSpace(errOut)))
	}
	return out, nil
}

// quiet runs docker and ignores failure (cleanup).
func (d *Deployment) quiet(args ...string) string {
	out, err := d.run(2*time.Minute, args...)
	if err != nil && !strings.Contains(err.Error(), "No such") && !strings.Contains(err.Error(), "not found") {
		d.t.Logf("dockertest cleanup: %v", err)
	}
	return out
}

func (d *Deployment) must(t testing.TB, what string, args ...string) string {
	t.Helper()
	out, err := d.run(5*time.Minute, args...)
	if err != nil {
		t.Fatalf("dockertest: %s: %v", what, err)
	}
	return out
}

func (d *Deployment) redact(s string) string {
	keys := make([]string, 0, len(d.secrets))
	for k := range d.secrets {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		s = strings.ReplaceAll(s, k, "[secret]")
	}
	return s
}

// ---------------------------------------------------------------------------------------------------
// Accessors

func (d *Deployment) ctr(t testing.TB, name string) *ctrRes {
	t.Helper()
	c := d.byName[name]
	if c == nil {
		t.Fatalf("dockertest: no declared container %q", name)
	}
	return c
}

// Container returns the real container name of a declared container (logical or declared name).
func (d *Deployment) Container(name string) string { return d.ctr(d.t, name).real }

// Network returns the real name of a declared network (logical or declared name).
func (d *Deployment) Network(name string) string {
	for _, n := range d.networks {
		if n.logical == name || n.declared == name {
			return n.real
		}
	}
	d.t.Fatalf("dockertest: no declared network %q", name)
	return ""
}

// Volume returns the real name of a declared (or implicitly used) volume.
func (d *Deployment) Volume(name string) string {
	for _, v := range d.volumes {
		if v.logical == name || v.declared == name {
			return v.real
		}
	}
	d.t.Fatalf("dockertest: no declared volume %q", name)
	return ""
}

// Image returns the tag dockertest built for a declared Image (logical name or imageName).
func (d *Deployment) Image(name string) string {
	for _, im := range d.images {
		if im.logical == name || im.declared == name {
			return im.tag
		}
	}
	d.t.Fatalf("dockertest: no declared image %q", name)
	return ""
}

// HostPath returns the real directory used for a declared host path.
func (d *Deployment) HostPath(declared string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.hostDirs[declared]
	if !ok {
		d.t.Fatalf("dockertest: no declared host path %q", declared)
	}
	return p
}

// Inspect returns `docker inspect` of a declared container.
func (d *Deployment) Inspect(name string) map[string]any {
	d.t.Helper()
	out, err := d.run(time.Minute, "inspect", "--type", "container", d.Container(name))
	if err != nil {
		d.t.Fatalf("dockertest: %v", err)
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		d.t.Fatalf("dockertest: docker inspect %s: %v", name, err)
	}
	return v[0]
}

// InspectImage returns `docker image inspect` of a built image.
func (d *Deployment) InspectImage(name string) map[string]any {
	d.t.Helper()
	out, err := d.run(time.Minute, "image", "inspect", d.Image(name))
	if err != nil {
		d.t.Fatalf("dockertest: %v", err)
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v) != 1 {
		d.t.Fatalf("dockertest: docker image inspect %s: %v", name, err)
	}
	return v[0]
}

// Exec runs cmd in a declared container (as its configured user) and returns stdout; the error carries
// the exit status and stderr.
func (d *Deployment) Exec(t testing.TB, name string, cmd ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, errOut, err := d.docker(ctx, nil, append([]string{"exec", d.ctr(t, name).real}, cmd...)...)
	if err != nil {
		return out, fmt.Errorf("exec %s in %s: %v: %s", strings.Join(cmd, " "), name, err, strings.TrimSpace(errOut))
	}
	return out, nil
}

// state reads State.Status and State.Health.Status ("" when the container has no healthcheck).
func (d *Deployment) state(real string) (status, health string, err error) {
	out, err := d.run(time.Minute, "inspect", "--type", "container", "--format",
		"{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}", real)
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		return "", "", fmt.Errorf("empty state for %s", real)
	}
	if len(f) > 1 {
		health = f[1]
	}
	return f[0], health, nil
}

// Health returns the container's health status: starting, healthy, unhealthy, or "" without healthcheck.
func (d *Deployment) Health(name string) string {
	d.t.Helper()
	_, h, err := d.state(d.Container(name))
	if err != nil {
		d.t.Fatalf("dockertest: %v", err)
	}
	return h
}

// Logs returns the container's stdout and stderr (redacted of declared secrets).
func (d *Deployment) Logs(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, errOut, err := d.docker(ctx, nil, "logs", "--tail", "200", d.Container(name))
	if err != nil {
		return fmt.Sprintf("(docker logs failed: %v)", err)
	}
	return d.redact(out + errOut)
}

// healthLog returns the last healthcheck outputs.
func (d *Deployment) healthLog(real string) string {
	out, err := d.run(time.Minute, "inspect", "--type", "container", "--format",
		"{{if .State.Health}}{{range .State.Health.Log}}exit={{.ExitCode}} {{.Output}}\n{{end}}{{end}}", real)
	if err != nil {
		return err.Error()
	}
	return d.redact(strings.TrimSpace(out))
}

// WaitHealthy waits until the container is healthy.
func (d *Deployment) WaitHealthy(t testing.TB, name string, timeout time.Duration) {
	t.Helper()
	d.WaitStatus(t, name, "healthy", timeout)
}

// WaitStatus waits until the container's health status is status (healthy or unhealthy); it fails at
// once if the container stops running, and reports the healthcheck log and docker logs on failure.
func (d *Deployment) WaitStatus(t testing.TB, name, status string, timeout time.Duration) {
	t.Helper()
	if err := d.waitStatus(d.ctr(t, name), status, timeout); err != nil {
		t.Fatal(err)
	}
}

func (d *Deployment) waitStatus(c *ctrRes, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var st, h string
	var err error
	for {
		st, h, err = d.state(c.real)
		if err != nil {
			return err
		}
		if h == want {
			return nil
		}
		if st != "running" && st != "created" && st != "restarting" {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("dockertest: container %s: want health %q within %s, got status=%s health=%q\nhealthcheck log:\n%s\ndocker logs:\n%s",
		c.logical, want, timeout, st, h, d.healthLog(c.real), d.Logs(c.logical))
}

// HostPort returns "ip:port" on the host for a published container port ("6379" or "6379/tcp").
func (d *Deployment) HostPort(t testing.TB, name, port string) string {
	t.Helper()
	out, err := d.run(time.Minute, "port", d.ctr(t, name).real, port)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	return strings.TrimSpace(strings.Split(out, "\n")[0])
}

// Replace removes the container (its named volumes stay) and creates it again from the same declared
// inputs, re-uploading files and waiting for health when it declares wait.
func (d *Deployment) Replace(t testing.TB, name string) {
	t.Helper()
	c := d.ctr(t, name)
	if _, err := d.run(2*time.Minute, "rm", "-f", "-v", c.real); err != nil {
		t.Fatalf("dockertest: replace %s: %v", name, err)
	}
	d.createAndStart(t, c)
}

// ReplaceWith removes the container (its named volumes stay) and creates it again, under the same real
// name, from new declared inputs (r.Name is the container's logical name), e.g. the program evaluated
// again with rotated secrets; files are re-uploaded and health is awaited when it declares wait.
func (d *Deployment) ReplaceWith(t testing.TB, r Resource) {
	t.Helper()
	old := d.ctr(t, r.Name)
	c := &ctrRes{logical: old.logical, declared: old.declared, real: old.real}
	var errs []string
	d.translateContainer(c, r, &errs)
	if len(errs) > 0 {
		t.Fatalf("dockertest: replace %s: cannot create the new inputs:%s", r.Name, d.redact(joinErrs(errs)))
	}
	if _, err := d.run(2*time.Minute, "rm", "-f", "-v", c.real); err != nil {
		t.Fatalf("dockertest: replace %s: %v", r.Name, err)
	}
	for i, x := range d.ctrs {
		if x == old {
			d.ctrs[i] = c
		}
	}
	for k, x := range d.byName {
		if x == old {
			d.byName[k] = c
		}
	}
	d.createAndStart(t, c)
}
