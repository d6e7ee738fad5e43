package dockertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

const selfTestPassword = "s3lf-test-Pa55word-not-real-0123456789"

func pm(m map[string]any) resource.PropertyMap { return resource.NewPropertyMapFromMap(m) }

func secret(v any) resource.PropertyValue { return resource.MakeSecret(resource.NewPropertyValue(v)) }

// selfTestResources is a hand-made stand-in for what the mock harness records.
func selfTestResources(dir string) []Resource {
	redis := pm(map[string]any{
		"name":              "selftest-redis",
		"image":             resource.MakeComputed(resource.NewStringProperty("")), // repoDigest, unknown under mocks
		"command":           []any{"redis-server", "/data/redis.conf"},
		"user":              "redis",
		"readOnly":          false, // the provider uploads to "/", which Docker refuses for a read-only root
		"tmpfs":             map[string]any{"/tmp": "rw,noexec,nosuid,size=16m"},
		"capabilities":      map[string]any{"drops": []any{"ALL"}},
		"securityOpts":      []any{"no-new-privileges:true"},
		"memory":            128,
		"memoryReservation": 64,
		"cpuShares":         512,
		"restart":           "unless-stopped",
		"logDriver":         "json-file",
		"logOpts":           map[string]any{"max-size": "1m", "max-file": "2"},
		"mounts":            []any{map[string]any{"type": "volume", "source": "selftest-data", "target": "/data"}},
		"networksAdvanced":  []any{map[string]any{"name": "selftest-net", "aliases": []any{"redis"}}},
		"ports":             []any{map[string]any{"internal": 6379, "external": 6379, "ip": "127.0.0.1", "protocol": "tcp"}},
		"healthcheck": map[string]any{
			"tests":       []any{"CMD-SHELL", "redis-cli ping | grep -qx PONG"},
			"interval":    "1s",
			"timeout":     "3s",
			"retries":     3,
			"startPeriod": "2s",
		},
		"wait":        true,
		"waitTimeout": 60,
	})
	redis["envs"] = secret([]any{"REDISCLI_AUTH=" + selfTestPassword, "FOO=bar baz"})
	redis["uploads"] = secret([]any{map[string]any{
		"file":        "/data/redis.conf",
		"content":     "port 6379\ndir /data\nrequirepass " + selfTestPassword + "\n",
		"permissions": "0644",
	}})
	client := pm(map[string]any{
		"name":             "selftest-client",
		"image":            "selftest/redis:v1@sha256:0000000000000000000000000000000000000000000000000000000000000000",
		"entrypoints":      []any{"sleep"},
		"command":          []any{"infinity"},
		"user":             "redis",
		"networksAdvanced": []any{map[string]any{"name": "selftest-net"}},
		// Declared: the provider reads the engine's default log options back otherwise (checkReadBack).
		"logDriver": "json-file",
		"logOpts":   map[string]any{"max-size": "1m", "max-file": "2"},
	})
	client["envs"] = secret([]any{"REDISCLI_AUTH=" + selfTestPassword})
	return []Resource{
		{Type: "emailclient:index:RedisBroker", Name: "broker", Inputs: resource.PropertyMap{}},
		{Type: "random:index/randomPassword:RandomPassword", Name: "broker-password", Inputs: pm(map[string]any{"length": 40, "special": false})},
		{Type: TypeImage, Name: "broker-image", Inputs: pm(map[string]any{
			"imageName": "selftest/redis:v1",
			"skipPush":  true,
			"build": map[string]any{
				"context":    dir,
				"dockerfile": filepath.Join(dir, "Dockerfile"),
				"args":       map[string]any{"BASE_IMAGE": "redis:7-alpine"}, // overridden: no registry
				"platform":   "linux/amd64",
			},
		})},
		{Type: TypeNetwork, Name: "broker-net", Inputs: pm(map[string]any{"name": "selftest-net", "driver": "bridge"})},
		{Type: TypeVolume, Name: "broker-data", Inputs: pm(map[string]any{"name": "selftest-data"})},
		{Type: TypeContainer, Name: "broker-redis", Inputs: redis},
		{Type: TypeContainer, Name: "client", Inputs: client},
	}
}

func TestApplySelfTest(t *testing.T) {
	Require(t)
	EnsureBaseImages(t, "redis")
	dir := t.TempDir()
	dockerfile := "ARG BASE_IMAGE=no-registry-here\nFROM ${BASE_IMAGE}\nRUN mkdir -p /data && chown redis:redis /data\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	suffix := MakeSuffix(t.Name())
	var imageTag string

	t.Run("apply", func(t *testing.T) {
		start := time.Now()
		d := Apply(t, selfTestResources(dir), ApplyOptions{
			Suffix:            suffix,
			BuildArgOverrides: map[string]string{"BASE_IMAGE": RedisBase},
		})
		t.Logf("Apply (build + create + healthy) took %s", time.Since(start).Round(100*time.Millisecond))
		imageTag = d.Image("broker-image")
		if d.Container("selftest-redis") != "selftest-redis-"+suffix || d.Container("broker-redis") != d.Container("selftest-redis") {
			t.Errorf("container names: %q", d.Container("broker-redis"))
		}
		if got := d.Health("broker-redis"); got != "healthy" {
			t.Fatalf("health %q", got)
		}

		in := d.Inspect("broker-redis")
		cfg := in["Config"].(map[string]any)
		hc := in["HostConfig"].(map[string]any)
		eq := func(what string, got, want any) {
			t.Helper()
			if got != want {
				t.Errorf("%s = %v, want %v", what, got, want)
			}
		}
		contains := func(what string, list any, want string) {
			t.Helper()
			for _, v := range asList(list) {
				if v == want {
					return
				}
			}
			t.Errorf("%s = %v, want it to contain %q", what, list, want)
		}
		eq("Config.Image", cfg["Image"], imageTag)
		eq("Config.User", cfg["User"], "redis")
		eq("Cmd", strings.Join(asList(cfg["Cmd"]), " "), "redis-server /data/redis.conf")
		contains("Config.Env", cfg["Env"], "FOO=bar baz")
		eq("HostConfig.ReadonlyRootfs", hc["ReadonlyRootfs"], false)
		eq("HostConfig.Tmpfs[/tmp]", hc["Tmpfs"].(map[string]any)["/tmp"], "rw,noexec,nosuid,size=16m")
		contains("HostConfig.CapDrop", hc["CapDrop"], "ALL")
		contains("HostConfig.SecurityOpt", hc["SecurityOpt"], "no-new-privileges:true")
		eq("HostConfig.Memory", hc["Memory"], float64(128<<20))
		eq("HostConfig.MemoryReservation", hc["MemoryReservation"], float64(64<<20))
		eq("HostConfig.CpuShares", hc["CpuShares"], float64(512))
		eq("HostConfig.RestartPolicy.Name", hc["RestartPolicy"].(map[string]any)["Name"], "unless-stopped")
		lc := hc["LogConfig"].(map[string]any)
		eq("LogConfig.Type", lc["Type"], "json-file")
		eq("LogConfig max-size", lc["Config"].(map[string]any)["max-size"], "1m")
		eq("LogConfig max-file", lc["Config"].(map[string]any)["max-file"], "2")
		h := cfg["Healthcheck"].(map[string]any)
		eq("Healthcheck.Test", strings.Join(asList(h["Test"]), "|"), "CMD-SHELL|redis-cli ping | grep -qx PONG")
		eq("Healthcheck.Interval", h["Interval"], float64(time.Second))
		eq("Healthcheck.Timeout", h["Timeout"], float64(3*time.Second))
		eq("Healthcheck.StartPeriod", h["StartPeriod"], float64(2*time.Second))
		eq("Healthcheck.Retries", h["Retries"], float64(3))
		var foundMount bool
		for _, m := range in["Mounts"].([]any) {
			m := m.(map[string]any)
			if m["Destination"] == "/data" && m["Type"] == "volume" && m["Name"] == "selftest-data-"+suffix {
				foundMount = true
			}
		}
		if !foundMount {
			t.Errorf("Mounts = %v, want volume selftest-data-%s at /data", in["Mounts"], suffix)
		}
		nets := in["NetworkSettings"].(map[string]any)["Networks"].(map[string]any)
		n, ok := nets["selftest-net-"+suffix].(map[string]any)
		if !ok {
			t.Fatalf("networks = %v", nets)
		}
		contains("network aliases", n["Aliases"], "redis")
		if hp := d.HostPort(t, "broker-redis", "6379/tcp"); !strings.HasPrefix(hp, "127.0.0.1:") || hp == "127.0.0.1:6379" {
			t.Errorf("host port %q: want an ephemeral port on 127.0.0.1", hp)
		}
		// The declared secret is nowhere in the process arguments.
		for _, k := range []string{"Cmd", "Entrypoint"} {
			if strings.Contains(strings.Join(asList(cfg[k]), " "), selfTestPassword) {
				t.Errorf("password in %s", k)
			}
		}

		// Upload landed with its mode and owner; runs as non-root.
		if out, err := d.Exec(t, "broker-redis", "stat", "-c", "%a %u", "/data/redis.conf"); err != nil || strings.TrimSpace(out) != "644 0" {
			t.Errorf("upload stat = %q, %v", out, err)
		}
		if out, err := d.Exec(t, "broker-redis", "id", "-u"); err != nil || strings.TrimSpace(out) != "100" {
			t.Errorf("id -u = %q, %v", out, err)
		}
		// The alias resolves from another container on the network; auth is enforced.
		if out, err := d.Exec(t, "client", "redis-cli", "-h", "redis", "SET", "k", "v"); err != nil || strings.TrimSpace(out) != "OK" {
			t.Fatalf("SET via alias = %q, %v", out, err)
		}
		if out, _ := d.Exec(t, "client", "env", "-u", "REDISCLI_AUTH", "redis-cli", "-h", "redis", "GET", "k"); !strings.Contains(out, "NOAUTH") {
			t.Errorf("unauthenticated GET = %q, want NOAUTH", out)
		}
		if _, err := d.Exec(t, "client", "redis-cli", "-h", "redis", "SAVE"); err != nil {
			t.Fatal(err)
		}

		// Replace: same volume, new container, data kept, upload redone.
		oldID := in["Id"]
		start = time.Now()
		d.Replace(t, "broker-redis")
		t.Logf("Replace (create + healthy) took %s", time.Since(start).Round(100*time.Millisecond))
		if d.Inspect("broker-redis")["Id"] == oldID {
			t.Error("Replace kept the same container")
		}
		if out, err := d.Exec(t, "client", "redis-cli", "-h", "redis", "GET", "k"); err != nil || strings.TrimSpace(out) != "v" {
			t.Errorf("GET after replace = %q, %v", out, err)
		}

		// Breaking the password the healthcheck uses turns the container unhealthy.
		if _, err := d.Exec(t, "broker-redis", "redis-cli", "CONFIG", "SET", "requirepass", "changed-elsewhere"); err != nil {
			t.Fatal(err)
		}
		d.WaitStatus(t, "broker-redis", "unhealthy", 30*time.Second)
		if !strings.Contains(d.Logs("broker-redis"), "Ready to accept connections") {
			t.Errorf("logs: %s", d.Logs("broker-redis"))
		}
	})

	// Cleanup of the subtest removed everything.
	for _, args := range [][]string{
		{"ps", "-a", "--format", "{{.Names}}", "--filter", "name=" + suffix},
		{"volume", "ls", "--format", "{{.Name}}", "--filter", "name=" + suffix},
		{"network", "ls", "--format", "{{.Name}}", "--filter", "name=" + suffix},
		{"ps", "-a", "--format", "{{.Names}}", "--filter", "label=" + LabelKey + "=" + suffix},
	} {
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("after cleanup: docker %s: %q %v", strings.Join(args, " "), out, err)
		}
	}
	if imageTag != "" && exec.Command("docker", "image", "inspect", imageTag).Run() == nil {
		t.Errorf("image %s left behind", imageTag)
	}
}

func asList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestTranslateRejectsUnknownFields needs no engine: a declared field without a CLI translation fails,
// and a secret never appears in the message.
func TestTranslateRejectsUnknownFields(t *testing.T) {
	d := &Deployment{t: t, suffix: "x", secrets: map[string]bool{}, byName: map[string]*ctrRes{}, hostDirs: map[string]string{}, work: t.TempDir()}
	d.images = []*imageRes{{logical: "img", declared: "a/b:1", tag: "a/b:1-x"}}
	in := pm(map[string]any{
		"image":               "a/b:1",
		"bogusField":          true,
		"healthcheck":         map[string]any{"tests": []any{"CMD", "true"}, "nope": 1},
		"attach":              true,
		"entrypoints":         []any{"/bin/sh", "-c"},
		"command":             []any{"echo hi"},
		"destroyGraceSeconds": 5,
	})
	in["envs"] = secret([]any{"PASSWORD=hunter2-secret-value", "BAD"})
	var errs []string
	c := &ctrRes{logical: "c", declared: "c", real: "c-x"}
	d.translateContainer(c, Resource{Type: TypeContainer, Name: "c", Inputs: in}, &errs)
	msg := d.redact(joinErrs(errs))
	for _, want := range []string{"c.bogusField", "c.healthcheck.nope", "c.attach", "c.envs[1]"} {
		if !strings.Contains(msg, want) {
			t.Errorf("errors %s\nmissing %q", msg, want)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("secret leaked: %s", msg)
	}
	if c.image != "a/b:1-x" {
		t.Errorf("image = %q", c.image)
	}
	if !slices.Equal(c.args, []string{"-c", "echo hi"}) || !slices.Contains(c.flags, "/bin/sh") {
		t.Errorf("entrypoint translation: flags %v args %v", c.flags, c.args)
	}
	if !slices.Equal(c.healthExec, []string{"true"}) || slices.Contains(c.flags, "--health-cmd") {
		t.Errorf("CMD healthcheck not kept in exec form: healthExec %v flags %v", c.healthExec, c.flags)
	}
}

// TestLevels needs no engine: containers are grouped by dependency level (declaration order inside a
// level, non-container names ignored) and a cycle is an error.
func TestLevels(t *testing.T) {
	d := &Deployment{t: t, byName: map[string]*ctrRes{}}
	for _, n := range []string{"redis-0", "redis-1", "sentinel-1", "sentinel-2", "worker"} {
		c := &ctrRes{logical: n, declared: n + "-declared"}
		d.ctrs = append(d.ctrs, c)
		d.byName[c.logical], d.byName[c.declared] = c, c
	}
	levels, err := d.levels(map[string][]string{
		"sentinel-1": {"image", "redis-0", "redis-1"},
		"sentinel-2": {"redis-0", "redis-1-declared", "network"},
		"worker":     {"sentinel-1", "sentinel-2", "redis-0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range levels {
		var names []string
		for _, c := range l {
			names = append(names, c.logical)
		}
		got = append(got, strings.Join(names, ","))
	}
	if want := []string{"redis-0,redis-1", "sentinel-1,sentinel-2", "worker"}; !slices.Equal(got, want) {
		t.Errorf("levels = %q, want %q", got, want)
	}
	if _, err := d.levels(map[string][]string{"redis-0": {"worker"}, "worker": {"redis-0"}}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: err = %v", err)
	}
}
