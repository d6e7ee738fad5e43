package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/components"
)

type imageRes struct {
	logical, declared, tag string
	args                   []string // docker build flags, without -t and context
	context                string
	buildkit               bool
}

type netRes struct {
	logical, declared, real string
	args                    []string
}

type volRes struct {
	logical, declared, real string
	args                    []string
}

type netAttach struct {
	real string
	args []string // flags for `docker network connect` (aliases, ip)
}

type upload struct {
	file    string
	content []byte
	mode    int64
}

type ctrRes struct {
	logical, declared, real string
	image                   string
	flags                   []string // docker create flags (without --name, image and command)
	args                    []string // after the image: rest of entrypoint + command
	env                     []string
	extraNets               []netAttach
	uploads                 []upload
	healthExec              []string // exec-form (CMD) healthcheck test, set through a derived image
	start, wait, mustRun    bool
	waitTimeout             time.Duration
	// readBack is what the declaration says of the attributes the provider reads back from the engine
	// after create (a difference is a change on every preview; for cpus a replace). logOpts is nil
	// when none are declared.
	readBack struct {
		cpus    string
		logOpts map[string]string
	}
}

var tagChars = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// ---------------------------------------------------------------------------------------------------
// Image

func (d *Deployment) translateImage(r Resource, errs *[]string) *imageRes {
	o := newObj(r.Name, plainMap(r.Inputs, false, d.secrets), errs)
	im := &imageRes{logical: r.Name}
	name, present, isUnknown := o.strOrUnknown("imageName")
	if !present || isUnknown || name == "" {
		name = strings.ToLower(r.Name)
	}
	im.declared = name
	repo, tag := splitImageRef(name)
	if tag == "" {
		tag = "latest"
	}
	tag = tagChars.ReplaceAllString(tag+"-"+d.suffix, "-")
	if len(tag) > 128 {
		tag = tag[len(tag)-128:]
	}
	im.tag = repo + ":" + tag
	d.track(func() { d.quiet("image", "rm", "-f", im.tag) })

	// We never push: registry settings only matter to a real `pulumi up`.
	o.ignore("skipPush", "buildOnPreview", "registry")
	b, ok := o.child("build")
	if !ok {
		o.fail("build", "no build declared: dockertest cannot pull (no registry)")
		o.done()
		return im
	}
	ctxDir := "."
	if s, ok := b.str("context"); ok && s != "" {
		ctxDir = s
	}
	if !filepath.IsAbs(ctxDir) {
		ctxDir = filepath.Join(d.root, ctxDir)
	}
	if st, err := os.Stat(ctxDir); err != nil || !st.IsDir() {
		b.fail("context", "build context %s is not a directory", ctxDir)
	}
	im.context = ctxDir
	dockerfile := filepath.Join(ctxDir, "Dockerfile")
	if s, ok := b.str("dockerfile"); ok && s != "" {
		dockerfile = s
		if !filepath.IsAbs(s) {
			// pulumi-docker resolves the Dockerfile from the program's working directory.
			dockerfile = filepath.Join(d.root, s)
			if _, err := os.Stat(dockerfile); err != nil {
				if _, err2 := os.Stat(filepath.Join(ctxDir, s)); err2 == nil {
					d.t.Logf("dockertest: NOTE %s: dockerfile %q is relative to the build context, not the working directory; using %s",
						r.Name, s, filepath.Join(ctxDir, s))
					dockerfile = filepath.Join(ctxDir, s)
				}
			}
		}
	}
	if _, err := os.Stat(dockerfile); err != nil {
		b.fail("dockerfile", "%s does not exist", dockerfile)
	}
	im.args = append(im.args, "-f", dockerfile)
	buildArgs := map[string]string{}
	var argKeys []string
	if keys, m, ok := b.strMap("args"); ok {
		argKeys = keys
		buildArgs = m
	}
	for k, v := range d.opts.BuildArgOverrides {
		if _, ok := buildArgs[k]; !ok {
			argKeys = append(argKeys, k)
		}
		buildArgs[k] = v
	}
	for _, k := range argKeys {
		im.args = append(im.args, "--build-arg", k+"="+buildArgs[k])
	}
	if s, ok := b.str("platform"); ok && s != "" {
		im.args = append(im.args, "--platform", s)
	}
	if s, ok := b.str("target"); ok && s != "" {
		im.args = append(im.args, "--target", s)
	}
	if s, ok := b.str("network"); ok && s != "" {
		im.args = append(im.args, "--network", s)
	}
	if hs, ok := b.strs("addHosts"); ok {
		for _, h := range hs {
			im.args = append(im.args, "--add-host", h)
		}
	}
	if cf, ok := b.child("cacheFrom"); ok {
		if imgs, ok := cf.strs("images"); ok {
			for _, i := range imgs {
				im.args = append(im.args, "--cache-from", i)
			}
		}
		cf.done()
	}
	if s, ok := b.str("builderVersion"); ok {
		im.buildkit = s == "BuilderBuildKit"
	} else {
		im.buildkit = true // pulumi-docker's default
	}
	b.done()
	o.done()
	return im
}

// splitImageRef returns repository and tag of "repo[:tag][@digest]".
func splitImageRef(ref string) (string, string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

// buildxOK tells whether the CLI has the buildx plugin (needed for BuildKit builds).
var buildxOK = sync.OnceValue(func() bool {
	return exec.Command("docker", "buildx", "version").Run() == nil
})

func (d *Deployment) buildImage(t testing.TB, im *imageRes) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	args := append([]string{"build", "-t", im.tag}, im.args...)
	args = append(args, im.context)
	cmd := exec.CommandContext(ctx, "docker", args...)
	builder := "BuildKit"
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=1")
	if !im.buildkit || !buildxOK() {
		// Without the buildx plugin the CLI can only use the legacy builder.
		builder = "legacy builder"
		cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dockertest: image %s: docker build (%s) failed: %v\n%s", im.logical, builder, err, d.redact(string(out)))
	}
	t.Logf("dockertest: built image %s as %s with the %s in %s", im.logical, im.tag, builder, time.Since(start).Round(100*time.Millisecond))
}

// ---------------------------------------------------------------------------------------------------
// Network and volume

func (d *Deployment) translateNetwork(r Resource, errs *[]string) *netRes {
	o := newObj(r.Name, plainMap(r.Inputs, false, d.secrets), errs)
	n := &netRes{logical: r.Name}
	name, present, isUnknown := o.strOrUnknown("name")
	if !present || isUnknown || name == "" {
		name = r.Name
	}
	n.declared, n.real = name, name+"-"+d.suffix
	n.args = []string{"--label", LabelKey + "=" + d.suffix}
	if s, ok := o.str("driver"); ok && s != "" {
		n.args = append(n.args, "--driver", s)
	}
	flag := func(key, f string) {
		if b, ok := o.boolean(key); ok && b {
			n.args = append(n.args, f)
		}
	}
	flag("internal", "--internal")
	flag("attachable", "--attachable")
	flag("ingress", "--ingress")
	flag("ipv6", "--ipv6")
	o.ignore("checkDuplicate") // the CLI always checks
	if keys, m, ok := o.strMap("options"); ok {
		for _, k := range keys {
			n.args = append(n.args, "--opt", k+"="+m[k])
		}
	}
	if s, ok := o.str("ipamDriver"); ok && s != "" {
		n.args = append(n.args, "--ipam-driver", s)
	}
	if keys, m, ok := o.strMap("ipamOptions"); ok {
		for _, k := range keys {
			n.args = append(n.args, "--ipam-opt", k+"="+m[k])
		}
	}
	if cfgs, ok := o.children("ipamConfigs"); ok {
		for _, c := range cfgs {
			for key, f := range map[string]string{"subnet": "--subnet", "gateway": "--gateway", "ipRange": "--ip-range"} {
				if s, ok := c.str(key); ok && s != "" {
					n.args = append(n.args, f, s)
				}
			}
			if keys, m, ok := c.strMap("auxAddress"); ok {
				for _, k := range keys {
					n.args = append(n.args, "--aux-address", k+"="+m[k])
				}
			}
			c.done()
		}
	}
	n.args = append(n.args, d.labels(o)...)
	n.args = append(n.args, n.real)
	o.done()
	return n
}

func (d *Deployment) translateVolume(r Resource, errs *[]string) *volRes {
	o := newObj(r.Name, plainMap(r.Inputs, false, d.secrets), errs)
	v := &volRes{logical: r.Name}
	name, present, isUnknown := o.strOrUnknown("name")
	if !present || isUnknown || name == "" {
		name = r.Name
	}
	v.declared, v.real = name, name+"-"+d.suffix
	v.args = []string{"--label", LabelKey + "=" + d.suffix}
	if s, ok := o.str("driver"); ok && s != "" {
		v.args = append(v.args, "--driver", s)
	}
	if keys, m, ok := o.strMap("driverOpts"); ok {
		for _, k := range keys {
			v.args = append(v.args, "--opt", k+"="+m[k])
		}
	}
	v.args = append(v.args, d.labels(o)...)
	v.args = append(v.args, v.real)
	o.done()
	return v
}

// labels translates [{label, value}].
func (d *Deployment) labels(o *obj) []string {
	var out []string
	if ls, ok := o.children("labels"); ok {
		for _, l := range ls {
			k, _ := l.str("label")
			v, _ := l.str("value")
			out = append(out, "--label", k+"="+v)
			l.done()
		}
	}
	return out
}

func (d *Deployment) resolveNetwork(o *obj, key, name string, isUnknown bool) string {
	if isUnknown {
		if len(d.networks) == 1 {
			return d.networks[0].real
		}
		o.fail(key, "network name is unknown under mocks and %d networks are declared", len(d.networks))
		return ""
	}
	for _, n := range d.networks {
		if n.declared == name || n.logical == name {
			return n.real
		}
	}
	switch name {
	case "bridge", "host", "none", "default":
		return name
	}
	o.fail(key, "network %q is not declared by the program", name)
	return ""
}

func (d *Deployment) resolveVolume(o *obj, key, name string, isUnknown bool) string {
	if isUnknown {
		if len(d.volumes) == 1 {
			return d.volumes[0].real
		}
		o.fail(key, "volume name is unknown under mocks and %d volumes are declared", len(d.volumes))
		return ""
	}
	for _, v := range d.volumes {
		if v.declared == name || v.logical == name {
			return v.real
		}
	}
	// Not declared: docker creates it implicitly; suffix it and remove it at cleanup.
	real := name + "-" + d.suffix
	d.track(func() { d.quiet("volume", "rm", "-f", real) })
	return real
}

func (d *Deployment) resolveHostPath(o *obj, key, declared string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.hostDirs[declared]; ok {
		return p
	}
	p, ok := d.opts.HostPaths[declared]
	if !ok {
		p = filepath.Join(d.work, "hostpaths", tagChars.ReplaceAllString(strings.Trim(declared, "/"), "_"))
		if err := os.MkdirAll(p, 0o755); err != nil {
			o.fail(key, "%v", err)
		}
	}
	d.hostDirs[declared] = p
	return p
}

func (d *Deployment) resolveImage(o *obj, c *ctrRes) string {
	ref, present, isUnknown := o.strOrUnknown("image")
	if d.opts.ImageFor != nil {
		want := d.opts.ImageFor(c.logical)
		if want == "" {
			want = d.opts.ImageFor(c.declared)
		}
		if want != "" {
			for _, im := range d.images {
				if im.logical == want || im.declared == want {
					return im.tag
				}
			}
			return want // a literal image reference
		}
	}
	if present && !isUnknown && ref != "" {
		base := ref
		if i := strings.Index(base, "@"); i >= 0 {
			base = base[:i]
		}
		baseRepo, _ := splitImageRef(base)
		for _, im := range d.images {
			declRepo, _ := splitImageRef(im.declared)
			if ref == im.declared || base == im.declared || im.logical == ref || (baseRepo == declRepo && !strings.HasPrefix(ref, "sha256:")) {
				return im.tag
			}
		}
	}
	if len(d.images) == 1 {
		return d.images[0].tag
	}
	o.fail("image", "cannot tell which of the %d declared images %q refers to: set ApplyOptions.ImageFor", len(d.images), ref)
	return ""
}

// ---------------------------------------------------------------------------------------------------
// Container

// Fields of docker:index/container:Container that only steer the provider and have no docker equivalent.
var ignoredContainerFields = []string{
	"containerReadRefreshTimeoutMilliseconds", // provider polling
	"destroyGraceSeconds",                     // provider's stop timeout on destroy
	"removeVolumes",                           // provider's destroy behaviour (we always remove)
}

func (d *Deployment) translateContainer(c *ctrRes, r Resource, errs *[]string) {
	o := newObj(r.Name, plainMap(r.Inputs, false, d.secrets), errs)
	o.ignore("name")
	o.ignore(ignoredContainerFields...)
	f := []string{"--label", LabelKey + "=" + d.suffix}
	add := func(a ...string) { f = append(f, a...) }
	str := func(key, flag string) {
		if s, ok := o.str(key); ok && s != "" {
			add(flag, s)
		}
	}
	strList := func(key, flag string) {
		if ss, ok := o.strs(key); ok {
			for _, s := range ss {
				add(flag, s)
			}
		}
	}
	boolean := func(key, flag string) {
		if b, ok := o.boolean(key); ok && b {
			add(flag)
		}
	}
	integer := func(key, flag, unit string) {
		if n, ok := o.integer(key); ok && n != 0 {
			add(flag, strconv.Itoa(n)+unit)
		}
	}
	kv := func(key, flag, sep string) {
		if keys, m, ok := o.strMap(key); ok {
			for _, k := range keys {
				if m[k] == "" && sep == ":" {
					add(flag, k)
				} else {
					add(flag, k+sep+m[k])
				}
			}
		}
	}

	c.image = d.resolveImage(o, c)

	// Process.
	cmd, hasCmd := o.strs("command")
	if eps, ok := o.strs("entrypoints"); ok {
		// The CLI takes one entrypoint word; the rest goes before the command (same argv).
		if len(eps) == 0 {
			add("--entrypoint", "")
		} else {
			add("--entrypoint", eps[0])
			c.args = append(c.args, eps[1:]...)
		}
	}
	if hasCmd {
		c.args = append(c.args, cmd...)
	}
	if envs, ok := o.strs("envs"); ok {
		for i, e := range envs {
			if !strings.Contains(e, "=") || strings.ContainsAny(e, "\n\r") {
				o.fail(fmt.Sprintf("envs[%d]", i), "not KEY=VALUE on one line")
			}
		}
		c.env = envs
	}
	str("user", "--user")
	str("workingDir", "--workdir")
	strList("groupAdds", "--group-add")
	boolean("init", "--init")
	boolean("tty", "--tty")
	boolean("stdinOpen", "--interactive")
	str("stopSignal", "--stop-signal")
	integer("stopTimeout", "--stop-timeout", "")
	str("hostname", "--hostname")
	str("domainname", "--domainname")
	if ls, ok := o.children("labels"); ok {
		for _, l := range ls {
			k, _ := l.str("label")
			v, _ := l.str("value")
			add("--label", k+"="+v)
			l.done()
		}
	}

	// Security.
	boolean("readOnly", "--read-only")
	boolean("privileged", "--privileged")
	strList("securityOpts", "--security-opt")
	if capObj, ok := o.child("capabilities"); ok {
		if ss, ok := capObj.strs("adds"); ok {
			for _, s := range ss {
				add("--cap-add", s)
			}
		}
		if ss, ok := capObj.strs("drops"); ok {
			for _, s := range ss {
				add("--cap-drop", s)
			}
		}
		capObj.done()
	}
	str("usernsMode", "--userns")
	str("ipcMode", "--ipc")
	str("pidMode", "--pid")
	str("cgroupnsMode", "--cgroupns")
	str("runtime", "--runtime")
	kv("sysctls", "--sysctl", "=")
	kv("storageOpts", "--storage-opt", "=")
	if us, ok := o.children("ulimits"); ok {
		for _, u := range us {
			n, _ := u.str("name")
			s, _ := u.integer("soft")
			h, _ := u.integer("hard")
			add("--ulimit", fmt.Sprintf("%s=%d:%d", n, s, h))
			u.done()
		}
	}
	if devs, ok := o.children("devices"); ok {
		for _, dv := range devs {
			hp, _ := dv.str("hostPath")
			spec := hp
			if cp, ok := dv.str("containerPath"); ok && cp != "" {
				spec += ":" + cp
			}
			if p, ok := dv.str("permissions"); ok && p != "" {
				spec += ":" + p
			}
			add("--device", spec)
			dv.done()
		}
	}
	str("gpus", "--gpus")

	// Resources (pulumi-docker memory values are MB; shmSize too).
	integer("memory", "--memory", "m")
	integer("memoryReservation", "--memory-reservation", "m")
	if n, ok := o.integer("memorySwap"); ok && n != 0 {
		if n < 0 {
			add("--memory-swap", "-1")
		} else {
			add("--memory-swap", strconv.Itoa(n)+"m")
		}
	}
	integer("shmSize", "--shm-size", "m")
	c.readBack.cpus, _ = o.str("cpus")
	str("cpus", "--cpus")
	integer("cpuShares", "--cpu-shares", "")
	integer("cpuPeriod", "--cpu-period", "")
	integer("cpuQuota", "--cpu-quota", "")
	str("cpuSet", "--cpuset-cpus")
	str("cgroupParent", "--cgroup-parent")

	// Lifecycle.
	restart, hasRestart := o.str("restart")
	if n, ok := o.integer("maxRetryCount"); ok && n > 0 {
		if restart != "on-failure" {
			o.fail("maxRetryCount", "only meaningful with restart on-failure (restart is %q)", restart)
		}
		restart = fmt.Sprintf("on-failure:%d", n)
		hasRestart = true
	}
	if hasRestart && restart != "" {
		add("--restart", restart)
	}
	boolean("rm", "--rm")
	if b, ok := o.boolean("attach"); ok && b {
		o.fail("attach", "attach: true (run to completion) is not supported by dockertest")
	}
	if b, ok := o.boolean("logs"); ok && b {
		o.fail("logs", "logs: true (collect logs of an attached run) is not supported by dockertest")
	}
	c.start = true
	if b, ok := o.boolean("start"); ok {
		c.start = b
	}
	c.mustRun = true
	if b, ok := o.boolean("mustRun"); ok {
		c.mustRun = b
	}
	if b, ok := o.boolean("wait"); ok {
		c.wait = b
	}
	c.waitTimeout = d.opts.HealthyTimeout
	if c.waitTimeout == 0 {
		c.waitTimeout = 120 * time.Second
	}
	if n, ok := o.integer("waitTimeout"); ok && n > 0 {
		c.waitTimeout = time.Duration(n) * time.Second
	}

	// Logging.
	str("logDriver", "--log-driver")
	_, c.readBack.logOpts, _ = o.strMap("logOpts")
	kv("logOpts", "--log-opt", "=")

	// Healthcheck.
	hasHealth := false
	if h, ok := o.child("healthcheck"); ok {
		if tests, ok := h.strs("tests"); ok && len(tests) > 0 {
			switch tests[0] {
			case "NONE":
				add("--no-healthcheck")
			case "CMD-SHELL":
				add("--health-cmd", strings.Join(tests[1:], " "))
				hasHealth = true
			case "CMD":
				// The CLI only expresses CMD-SHELL, which needs /bin/sh in the image (a FROM scratch
				// image has none): the exec form goes into a derived image's HEALTHCHECK, which the
				// container inherits; the flags below still set the schedule.
				c.healthExec = tests[1:]
				hasHealth = true
			default:
				h.fail("tests", "first element must be CMD, CMD-SHELL or NONE, got %q", tests[0])
			}
		}
		for key, flag := range map[string]string{"interval": "--health-interval", "timeout": "--health-timeout",
			"startPeriod": "--health-start-period", "startInterval": "--health-start-interval"} {
			if s, ok := h.str(key); ok && s != "" && s != "0s" {
				add(flag, s)
			}
		}
		if n, ok := h.integer("retries"); ok && n != 0 {
			add("--health-retries", strconv.Itoa(n))
		}
		h.done()
	}
	if c.wait && !hasHealth {
		d.t.Logf("dockertest: NOTE %s declares wait without its own healthcheck test: relies on the image's HEALTHCHECK", c.logical)
	}

	// Networking.
	var first bool
	networkMode, hasMode := o.str("networkMode")
	if nets, ok := o.children("networksAdvanced"); ok {
		for i, n := range nets {
			name, _, unk := n.strOrUnknown("name")
			real := d.resolveNetwork(n, "name", name, unk)
			var na []string
			if as, ok := n.strs("aliases"); ok {
				for _, a := range as {
					na = append(na, "--alias", a)
				}
			}
			if s, ok := n.str("ipv4Address"); ok && s != "" {
				na = append(na, "--ip", s)
			}
			if s, ok := n.str("ipv6Address"); ok && s != "" {
				na = append(na, "--ip6", s)
			}
			if s, ok := n.str("macAddress"); ok && s != "" {
				if i > 0 {
					n.fail("macAddress", "the CLI sets a MAC address only for the first network")
				}
				add("--mac-address", s)
			}
			n.done()
			if i == 0 {
				first = true
				add("--network", real)
				for j := 0; j+1 < len(na); j += 2 {
					add(map[string]string{"--alias": "--network-alias", "--ip": "--ip", "--ip6": "--ip6"}[na[j]], na[j+1])
				}
			} else {
				c.extraNets = append(c.extraNets, netAttach{real: real, args: na})
			}
		}
	}
	if hasMode && networkMode != "" {
		switch {
		case !first:
			add("--network", d.resolveNetwork(o, "networkMode", networkMode, false))
		case networkMode == "bridge" || networkMode == "default":
			// pulumi-docker attaches networksAdvanced instead; nothing to add.
		default:
			o.fail("networkMode", "%q together with networksAdvanced is not supported", networkMode)
		}
	}
	if ps, ok := o.children("ports"); ok {
		for _, p := range ps {
			internal, _ := p.integer("internal")
			spec := strconv.Itoa(internal)
			ext, hasExt := p.integer("external")
			if !d.opts.KeepHostPorts || !hasExt {
				ext = 0
			}
			ip, _ := p.str("ip")
			switch {
			case ip != "" && ext != 0:
				spec = fmt.Sprintf("%s:%d:%s", ip, ext, spec)
			case ip != "":
				spec = ip + "::" + spec
			case ext != 0:
				spec = fmt.Sprintf("%d:%s", ext, spec)
			}
			if proto, ok := p.str("protocol"); ok && proto != "" {
				spec += "/" + proto
			}
			add("--publish", spec)
			p.done()
		}
	}
	boolean("publishAllPorts", "--publish-all")
	strList("dns", "--dns")
	strList("dnsOpts", "--dns-option")
	strList("dnsSearches", "--dns-search")
	if hs, ok := o.children("hosts"); ok {
		for _, h := range hs {
			host, _ := h.str("host")
			ip, _ := h.str("ip")
			add("--add-host", host+":"+ip)
			h.done()
		}
	}

	// Storage.
	kv("tmpfs", "--tmpfs", ":")
	if vs, ok := o.children("volumes"); ok {
		for _, v := range vs {
			cp, _ := v.str("containerPath")
			ro, _ := v.boolean("readOnly")
			suffix := ""
			if ro {
				suffix = ":ro"
			}
			if from, ok := v.str("fromContainer"); ok && from != "" {
				other := d.byName[from]
				if other == nil {
					v.fail("fromContainer", "container %q is not declared", from)
					v.done()
					continue
				}
				add("--volumes-from", other.real+suffix)
				v.done()
				continue
			}
			if cp == "" {
				v.fail("containerPath", "missing")
			}
			name, present, unk := v.strOrUnknown("volumeName")
			hp, hasHP := v.str("hostPath")
			switch {
			case present && (unk || name != ""):
				add("--volume", d.resolveVolume(v, "volumeName", name, unk)+":"+cp+suffix)
			case hasHP && hp != "":
				add("--volume", d.resolveHostPath(v, "hostPath", hp)+":"+cp+suffix)
			default:
				add("--volume", cp+suffix) // anonymous volume
			}
			v.done()
		}
	}
	if ms, ok := o.children("mounts"); ok {
		for _, m := range ms {
			typ, _ := m.str("type")
			target, _ := m.str("target")
			spec := []string{"type=" + typ}
			src, present, unk := m.strOrUnknown("source")
			switch typ {
			case "volume":
				if present && (unk || src != "") {
					spec = append(spec, "source="+d.resolveVolume(m, "source", src, unk))
				}
			case "bind":
				if !present || unk || src == "" {
					m.fail("source", "a bind mount needs a known source")
				} else {
					spec = append(spec, "source="+d.resolveHostPath(m, "source", src))
				}
			case "tmpfs":
				if present && src != "" {
					m.fail("source", "a tmpfs mount takes no source")
				}
			default:
				m.fail("type", "unsupported mount type %q", typ)
			}
			spec = append(spec, "target="+target)
			if ro, ok := m.boolean("readOnly"); ok && ro {
				spec = append(spec, "readonly")
			}
			if bo, ok := m.child("bindOptions"); ok {
				if s, ok := bo.str("propagation"); ok && s != "" {
					spec = append(spec, "bind-propagation="+s)
				}
				bo.done()
			}
			if vo, ok := m.child("volumeOptions"); ok {
				if b, ok := vo.boolean("noCopy"); ok && b {
					spec = append(spec, "volume-nocopy")
				}
				if s, ok := vo.str("driverName"); ok && s != "" {
					spec = append(spec, "volume-driver="+s)
				}
				if keys, mm, ok := vo.strMap("driverOptions"); ok {
					for _, k := range keys {
						spec = append(spec, "volume-opt="+k+"="+mm[k])
					}
				}
				if ls, ok := vo.children("labels"); ok {
					for _, l := range ls {
						k, _ := l.str("label")
						v, _ := l.str("value")
						spec = append(spec, "volume-label="+k+"="+v)
						l.done()
					}
				}
				if s, ok := vo.str("subpath"); ok && s != "" {
					vo.fail("subpath", "volume subpath needs Docker API 1.45; not supported here")
				}
				vo.done()
			}
			if to, ok := m.child("tmpfsOptions"); ok {
				if n, ok := to.integer("sizeBytes"); ok && n > 0 {
					spec = append(spec, "tmpfs-size="+strconv.Itoa(n))
				}
				if n, ok := to.integer("mode"); ok && n > 0 {
					spec = append(spec, "tmpfs-mode="+strconv.FormatInt(int64(n), 8))
				}
				to.done()
			}
			add("--mount", strings.Join(spec, ","))
			m.done()
		}
	}

	// Uploads.
	if ups, ok := o.children("uploads"); ok {
		for _, u := range ups {
			file, _ := u.str("file")
			if !path.IsAbs(file) {
				u.fail("file", "must be an absolute path in the container, got %q", file)
			}
			var content []byte
			n := 0
			if s, ok := u.str("content"); ok {
				content, n = []byte(s), n+1
			}
			if s, ok := u.str("contentBase64"); ok {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					u.fail("contentBase64", "%v", err)
				}
				content, n = b, n+1
			}
			if s, ok := u.str("source"); ok {
				p := s
				if !filepath.IsAbs(p) {
					p = filepath.Join(d.root, p)
				}
				b, err := os.ReadFile(p)
				if err != nil {
					u.fail("source", "%v", err)
				}
				content, n = b, n+1
			}
			u.ignore("sourceHash") // only triggers replacement in the provider
			if n != 1 {
				u.fail("content", "exactly one of content, contentBase64, source must be given (got %d)", n)
			}
			mode := int64(0o644)
			if b, ok := u.boolean("executable"); ok && b {
				mode = 0o744
			}
			if s, ok := u.str("permissions"); ok && s != "" {
				m, err := strconv.ParseInt(s, 8, 32)
				if err != nil {
					u.fail("permissions", "not an octal mode: %q", s)
				}
				mode = m
			}
			c.uploads = append(c.uploads, upload{file: file, content: content, mode: mode})
			u.done()
		}
	}
	c.flags = f
	o.done()
}

func (d *Deployment) createAndStart(t testing.TB, c *ctrRes) {
	t.Helper()
	d.create(t, c)
	start := time.Now()
	d.startNoWait(t, c)
	d.awaitStarted(t, c, start)
}

// create creates the container, connects its extra networks and uploads its files (not started).
func (d *Deployment) create(t testing.TB, c *ctrRes) {
	t.Helper()
	image := c.image
	if len(c.healthExec) > 0 {
		image = d.healthImage(t, c)
	}
	args := []string{"create", "--name", c.real}
	args = append(args, c.flags...)
	if len(c.env) > 0 {
		// An env file keeps secret values off command lines (ours and `ps`).
		f, err := os.CreateTemp(d.work, "env-")
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString(strings.Join(c.env, "\n") + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f.Name())
		args = append(args, "--env-file", f.Name())
	}
	args = append(args, image)
	args = append(args, c.args...)
	d.track(func() { d.quiet("rm", "-f", "-v", c.real) })
	d.must(t, "container "+c.logical, args...)
	for _, n := range c.extraNets {
		d.must(t, "container "+c.logical, append(append([]string{"network", "connect"}, n.args...), n.real, c.real)...)
	}
	d.checkReadBack(t, c)
	for _, u := range c.uploads {
		// As pulumi-docker 4.10.0 (terraform-provider-docker's container create) uploads: one tar per
		// file, the file's full declared path as the entry name, no directory entries, copied to "/"
		// of the created container. Docker refuses a copy to "/" of a read-only root filesystem, even
		// when the file lands in a volume.
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		hdr := &tar.Header{Name: u.file, Mode: u.mode, Size: int64(len(u.content)), ModTime: time.Now()}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(u.content); err != nil {
			t.Fatal(err)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, errOut, err := d.docker(ctx, buf.Bytes(), "cp", "-", c.real+":/")
		cancel()
		if err != nil {
			t.Fatalf("dockertest: container %s: upload %s: %v: %s (the provider copies every upload to \"/\", which Docker refuses for a read-only root filesystem)",
				c.logical, u.file, err, strings.TrimSpace(errOut))
		}
	}
}

// checkReadBack reads the created container back as the provider's Read does (terraform-provider-docker
// resourceDockerContainerRead) and fails where that differs from the declaration: such a difference
// shows as a change on every `pulumi preview`, and for cpus (ForceNew) restarts the container on every
// `pulumi up`. Checked: cpus (nanoInt64ToDecimalString, "2" reads back as "2.0") and log_opts (the
// daemon's default options are read back when none are declared).
func (d *Deployment) checkReadBack(t testing.TB, c *ctrRes) {
	t.Helper()
	out := d.must(t, "container "+c.logical, "inspect", "--format", "{{json .HostConfig}}", c.real)
	var hc struct {
		NanoCpus  int64
		LogConfig struct{ Config map[string]string }
	}
	if err := json.Unmarshal([]byte(out), &hc); err != nil {
		t.Fatalf("dockertest: container %s: inspect: %v", c.logical, err)
	}
	if hc.NanoCpus > 0 {
		if back := components.ReadBackCPUs(hc.NanoCpus); back != c.readBack.cpus {
			t.Errorf("dockertest: container %s: cpus %q is read back by the provider as %q: a replace on every pulumi up", c.logical, c.readBack.cpus, back)
		}
	}
	if !maps.Equal(hc.LogConfig.Config, c.readBack.logOpts) {
		t.Errorf("dockertest: container %s: declared logOpts %v are read back as %v (the engine's defaults where none are declared): a change on every preview",
			c.logical, c.readBack.logOpts, hc.LogConfig.Config)
	}
}

// startNoWait starts the container (unless it declares start: false).
func (d *Deployment) startNoWait(t testing.TB, c *ctrRes) {
	t.Helper()
	if !c.start {
		return
	}
	if _, err := d.run(2*time.Minute, "start", c.real); err != nil {
		t.Fatalf("dockertest: container %s: %v\ndocker logs:\n%s", c.logical, err, d.Logs(c.logical))
	}
}

// awaitStarted waits for health when the container declares wait, else checks it runs when it must.
func (d *Deployment) awaitStarted(t testing.TB, c *ctrRes, start time.Time) {
	t.Helper()
	if !c.start {
		return
	}
	if c.wait {
		if err := d.waitStatus(c, "healthy", c.waitTimeout); err != nil {
			t.Fatal(err)
		}
		t.Logf("dockertest: container %s healthy %s after start", c.logical, time.Since(start).Round(100*time.Millisecond))
		return
	}
	if c.mustRun {
		if st, _, err := d.state(c.real); err != nil || st != "running" {
			t.Fatalf("dockertest: container %s is not running after start (status %q, %v)\ndocker logs:\n%s", c.logical, st, err, d.Logs(c.logical))
		}
	}
}

// healthImage builds (once per container) an image FROM the container's image whose only change is
// the declared exec-form healthcheck, so that Config.Healthcheck.Test is exactly ["CMD", ...].
func (d *Deployment) healthImage(t testing.TB, c *ctrRes) string {
	t.Helper()
	tag := "dockertest-health:" + strings.ToLower(tagChars.ReplaceAllString(c.real, "-"))
	test, err := json.Marshal(c.healthExec)
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := "FROM " + c.image + "\nHEALTHCHECK CMD " + string(test) + "\n"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", "build", "-q", "-t", tag, "-")
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	cmd.Stdin = strings.NewReader(dockerfile)
	d.track(func() { d.quiet("image", "rm", "-f", tag) })
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dockertest: container %s: image with the exec-form healthcheck: %v\n%s", c.logical, err, d.redact(string(out)))
	}
	return tag
}
