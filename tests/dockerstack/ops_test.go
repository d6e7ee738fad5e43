package dockerstack

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/tests/dockertest"
)

// Logical names of the operations containers and their volume (components/operations.go).
const (
	opsBackup   = "ops-backup"
	opsMetrics  = "ops-metrics"
	opsBackups  = "ops-backups"
	opsImageRes = "ops-image"
)

var backupOK = regexp.MustCompile(`(?m)^backup ok file=(\S+) .*$`)

// TestOpsContainers applies the dev stack with the redis-ops image built from the binary build.sh
// stages (operations.build prebuilt), a backup every minute and the metrics exporter, and checks the
// hardening of both containers, a backup with its manifest in the backups volume and /metrics. The
// broker is built on the busybox base (the userland of redis:7-alpine, the stacks' default).
func TestOpsContainers(t *testing.T) {
	dockertest.Require(t)
	dockertest.EnsureBaseImages(t, "redis", "busybox", "celery")
	root, err := dockertest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if out, err := exec.Command("bash", filepath.Join(root, "deployment/docker/ops/build.sh")).CombinedOutput(); err != nil {
		t.Fatalf("deployment/docker/ops/build.sh: %v\n%s", err, out)
	}
	t.Logf("build.sh staged the rootfs in %s", time.Since(start).Round(100*time.Millisecond))

	cfg := map[string]string{
		"container":    strings.Replace(shortHealthcheck, dockertest.RedisBase, dockertest.RedisBusybox, 1),
		"emailService": `{"enabled":false}`,
		"operations":   `{"build":"prebuilt","backup":{"enabled":true,"schedule":"* * * * *","retention":"720h","volume":"redis-backups"},"metrics":{"enabled":true}}`,
	}
	res := declare(t, "dev", cfg)
	ins := map[string]map[string]any{opsBackup: containerInputs(t, res, opsBackup), opsMetrics: containerInputs(t, res, opsMetrics)}

	d, took := apply(t, res, dockertest.ApplyOptions{DependsOn: containerDeps(res)})
	t.Logf("FIGURE ops stack on busybox: apply (broker + redis-ops image, Redis, backup and metrics containers) until Redis healthy: %s", took.Round(100*time.Millisecond))
	assertBusybox(t, d, redisCtr)
	applied := time.Now()

	t.Run("Hardening", func(t *testing.T) {
		for name, in := range ins {
			insp := d.Inspect(name)
			hc := assertLockedDown(t, name, insp, in)
			u, _ := in["user"].(string)
			// The process itself (the image is FROM scratch: no id or sh inside).
			out, err := exec.Command("docker", "top", d.Container(name), "-o", "pid,uid,args").CombinedOutput()
			if err != nil {
				t.Errorf("%s: docker top: %v: %s", name, err, out)
			} else {
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				uid := strings.SplitN(u, ":", 2)[0]
				for _, l := range lines[1:] {
					f := strings.Fields(l)
					if len(f) < 2 || f[1] == "0" || f[1] == "root" || (uid != "" && f[1] != uid) {
						t.Errorf("%s: process %q, want uid %s", name, l, uid)
					}
				}
				t.Logf("%s processes: %s", name, strings.Join(lines[1:], " | "))
			}
			// No celery or admin (ops) password in the container's config: the backup container reads the
			// ops password from the run volume; the metrics container has the monitor user's in its env
			// and no run volume at all (it holds the admin password).
			cfgEnv := strings.Join(strs(get(insp, "Config", "Env")), " ") + strings.Join(strs(get(insp, "Config", "Cmd")), " ")
			noSecrets(t, name+" Config.Env/Cmd", cfgEnv)
			if name == opsMetrics {
				if !strings.Contains(cfgEnv, "REDIS_USERNAME=monitor") {
					t.Errorf("%s: env %q, want the monitor user", name, cfgEnv)
				}
				for _, m := range insp["Mounts"].([]any) {
					if dest := m.(map[string]any)["Destination"]; dest == "/run/redis" {
						t.Errorf("%s mounts %v, which holds the admin password", name, dest)
					}
				}
			}
			// /run/redis and /data are read-only mounts; only the backup container writes /backups.
			for _, m := range insp["Mounts"].([]any) {
				mm := m.(map[string]any)
				wantRW := name == opsBackup && mm["Destination"] == components.BackupsDir
				if mm["RW"] != wantRW {
					t.Errorf("%s: mount %v RW = %v, want %v", name, mm["Destination"], mm["RW"], wantRW)
				}
			}
			t.Logf("%s: User=%v ReadonlyRootfs=%v CapDrop=%v SecurityOpt=%v", name, get(insp, "Config", "User"), hc["ReadonlyRootfs"], hc["CapDrop"], hc["SecurityOpt"])
		}
	})

	t.Run("Backup", func(t *testing.T) {
		// Schedule "* * * * *": the first run is at the next minute boundary (at most 60 s).
		var logs string
		for time.Since(applied) < 75*time.Second {
			logs = d.Logs(opsBackup)
			if backupOK.MatchString(logs) || strings.Contains(logs, "backup FAILED") {
				break
			}
			if st, _ := get(d.Inspect(opsBackup), "State", "Status").(string); st != "running" {
				t.Fatalf("the backup container is %s\nlogs:\n%s", st, logs)
			}
			time.Sleep(time.Second)
		}
		noSecrets(t, "backup container logs", logs)
		m := backupOK.FindAllStringSubmatch(logs, -1)
		if len(m) == 0 || strings.Contains(logs, "backup FAILED") {
			t.Fatalf("no `backup ok` line within 75s of apply (schedule * * * * *)\nbackup container logs:\n%s", logs)
		}
		t.Logf("FIGURE ops backup: first `backup ok` seen %s after apply (%d line(s)): %s", time.Since(applied).Round(time.Second), len(m), m[0][0])
		file := m[0][1]

		// The file and its manifest in the backups volume, listed and verified by redis-ops.
		vol := d.Volume(opsBackups)
		ls := dockerCmd(t, "run", "--rm", "--label", dockertest.LabelKey+"="+d.Suffix(), "--entrypoint", "ls", "-v", vol+":/b:ro", dockertest.RedisBase, "-ln", "/b")
		base := filepath.Base(file)
		manifest := strings.TrimSuffix(base, ".rdb") + ".manifest.json"
		if !strings.Contains(ls, base) || !strings.Contains(ls, manifest) {
			t.Errorf("volume %s holds:\n%s\nwant %s and %s", vol, ls, base, manifest)
		}
		t.Logf("backups volume:\n%s", strings.TrimSpace(ls))
		list, err := d.Exec(t, opsMetrics, "/redis-ops", "list", "--dir", components.BackupsDir)
		if err != nil || !strings.Contains(list, strings.TrimSuffix(base, ".rdb")) {
			t.Errorf("redis-ops list --dir /backups in the metrics container: %v\n%s", err, list)
		}
		t.Logf("redis-ops list: %s", strings.TrimSpace(list))
	})

	t.Run("Metrics", func(t *testing.T) {
		d.WaitHealthy(t, opsMetrics, 60*time.Second)
		url := "http://" + components.MetricsAlias + ":" + "9121" + "/metrics"
		var body string
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := exec.Command("docker", "run", "--rm", "--label", dockertest.LabelKey+"="+d.Suffix(), "--network", d.Network("broker-network"),
				dockertest.CeleryBase, "python3", "-c", "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen('"+url+"',timeout=10).read().decode())").CombinedOutput()
			body = string(out)
			if err != nil {
				t.Fatalf("GET %s from the broker network: %v\n%s", url, err, body)
			}
			// The backup age appears once a backup exists (the Backup subtest waits for one).
			if strings.Contains(body, "redis_backup_last_success_age_seconds") || time.Now().After(deadline) {
				break
			}
			time.Sleep(3 * time.Second)
		}
		noSecrets(t, "/metrics", body)
		var found []string
		for _, l := range strings.Split(body, "\n") {
			for _, name := range []string{"redis_up", "redis_celery_queue_length", "redis_backup_last_success_age_seconds"} {
				if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
					found = append(found, l)
				}
			}
		}
		t.Logf("metrics: %s", strings.Join(found, " | "))
		if !regexp.MustCompile(`(?m)^redis_up 1$`).MatchString(body) {
			t.Errorf("/metrics has no `redis_up 1`:\n%s", body)
		}
		for _, name := range []string{"redis_celery_queue_length", "redis_backup_last_success_age_seconds"} {
			if !regexp.MustCompile(`(?m)^` + name + `[ {]`).MatchString(body) {
				t.Errorf("/metrics has no %s sample:\n%s", name, body)
			}
		}
	})
	if img := d.Image(opsImageRes); img == "" {
		t.Errorf("no redis-ops image")
	}
}
