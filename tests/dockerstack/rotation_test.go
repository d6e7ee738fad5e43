package dockerstack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/dockertest"
)

// clientReport is the one JSON line emailworker.client prints.
type clientReport struct {
	Completed, Failed, Pending, Sent int
	TaskIDs                          []string `json:"task_ids"`
	Errors                           []string
	Error                            string
}

func parseReport(t *testing.T, out string) clientReport {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rep clientReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("client output is not one JSON line: %v", err)
	}
	return rep
}

// declareWith runs the program for a stack with config and secret config values.
func declareWith(t *testing.T, stack string, cfg, secrets map[string]string) *declared.Result {
	t.Helper()
	res, err := declared.Run(stack, declared.Options{Config: cfg, Secrets: secrets})
	if err != nil {
		t.Fatalf("the program failed for stack %s: %v", stack, err)
	}
	return res
}

func declaredResource(t *testing.T, res *declared.Result, typ, name string) dockertest.Resource {
	t.Helper()
	r, ok := res.Get(typ, name)
	if !ok {
		t.Fatalf("the program declares no %s %s", typ, name)
	}
	return dockertest.Resource{Type: r.Type, Name: r.Name, Inputs: r.Inputs}
}

// envFile writes the declared env of the email-service container to a 0600 file.
func envFile(t *testing.T, res *declared.Result) string {
	t.Helper()
	envs := strs(containerInputs(t, res, emailCtr)["envs"])
	if len(envs) == 0 {
		t.Fatalf("the email-service container declares no env")
	}
	f := filepath.Join(t.TempDir(), "email.env")
	if err := os.WriteFile(f, []byte(strings.Join(envs, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// oneOff runs the emailworker client in a throwaway container of the email-service image on the
// declared network, with the given env file.
func oneOff(t *testing.T, d *dockertest.Deployment, env string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("docker", append([]string{"run", "--rm", "--label", dockertest.LabelKey + "=" + d.Suffix(),
		"--network", d.Network("broker-network"), "--env-file", env, "--entrypoint", "python3",
		d.Image(emailImage), "-m", "emailworker.client"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// TestPasswordRotationWithContainers (issue 10): tasks queued with the old passwords survive a rotation
// that re-creates the Redis and email-service containers from the program's new inputs on the same
// volumes; the worker works with the new URL and the old one is refused.
func TestPasswordRotationWithContainers(t *testing.T) {
	dockertest.Require(t)
	dockertest.EnsureBaseImages(t, "redis", "celery")
	cfg := localBases()
	cfg["container"] = `{"baseImage":"` + dockertest.RedisBase + `","healthcheck":{"interval":"3s","timeout":"2s","retries":3,"startPeriod":"2s"}}`
	before := map[string]string{"password": "rotation-before-0123456789abcdef", "opsPassword": "rotation-before-ops-0123456789ab"}
	after := map[string]string{"password": "rotation-after-0123456789abcdefg", "opsPassword": "rotation-after-ops-0123456789abc"}
	clean := func(what, s string) {
		t.Helper()
		for _, m := range []map[string]string{before, after} {
			for k, pw := range m {
				if strings.Contains(s, pw) {
					t.Errorf("%s contains the configured %s", what, k)
				}
			}
		}
	}

	resA := declareWith(t, "dev", cfg, before)
	d, took := apply(t, resA, dockertest.ApplyOptions{})
	t.Logf("FIGURE rotation: apply dev stack (secrets A) until Redis healthy: %s", took.Round(100*time.Millisecond))
	envA := envFile(t, resA)

	// The worker is down while tasks are queued (as during a deploy): they wait in Redis.
	dockerCmd(t, "stop", "-t", "20", d.Container(emailCtr))
	const n = 30
	out, err := oneOff(t, d, envA, "enqueue", "--count", "30")
	clean("enqueue output", out)
	if err != nil {
		t.Fatalf("enqueue with the old env: %v: %s", err, strings.TrimSpace(out))
	}
	queued := parseReport(t, out)
	if queued.Sent != n || len(queued.TaskIDs) != n {
		t.Fatalf("enqueued %d tasks (%d ids), want %d: %s", queued.Sent, len(queued.TaskIDs), n, strings.TrimSpace(out))
	}

	// Rotate: the program evaluated again with secrets B, both containers re-created from the new inputs.
	resB := declareWith(t, "dev", cfg, after)
	start := time.Now()
	dockerCmd(t, "stop", "-t", "20", d.Container(redisCtr)) // graceful, as a deploy stops the old container
	d.ReplaceWith(t, declaredResource(t, resB, declared.ContainerType, components.FilesCarrier(redisCtr)))
	d.ReplaceWith(t, declaredResource(t, resB, declared.ContainerType, redisCtr))
	d.ReplaceWith(t, declaredResource(t, resB, declared.ContainerType, emailCtr))
	t.Logf("FIGURE rotation: re-create Redis (healthy) and email-service from the new inputs: %s", time.Since(start).Round(100*time.Millisecond))
	ein := d.Inspect(emailCtr)
	if st, _ := get(ein, "State", "Status").(string); st != "running" {
		t.Fatalf("email-service after the rotation: status %q\n%s", st, d.Logs(emailCtr))
	}
	var newURL bool
	for _, e := range strs(get(ein, "Config", "Env")) {
		if v, ok := strings.CutPrefix(e, "CELERY_BROKER_URL="); ok && strings.Contains(v, after["password"]) {
			newURL = true
		}
	}
	if !newURL {
		t.Fatalf("the re-created email-service does not carry the new password in CELERY_BROKER_URL")
	}

	// Every task queued before the rotation runs after it.
	out, err = d.Exec(t, emailCtr, append([]string{"python3", "-m", "emailworker.client", "collect", "--timeout", "120"}, queued.TaskIDs...)...)
	clean("collect output", out)
	if err != nil {
		t.Fatalf("collect: %v: %s\n%s", err, strings.TrimSpace(out), d.Logs(emailCtr))
	}
	done := parseReport(t, out)
	if done.Completed != n {
		t.Errorf("%d of %d queued tasks completed after the rotation (lost %d): %+v\n%s", done.Completed, n, n-done.Completed, done, d.Logs(emailCtr))
	}

	// A fresh send works with the new URL.
	out, err = d.Exec(t, emailCtr, "python3", "-m", "emailworker.client", "send", "--count", "3", "--timeout", "60")
	clean("send output", out)
	if err != nil || parseReport(t, out).Completed != 3 {
		t.Errorf("fresh send after the rotation: %v: %s", err, strings.TrimSpace(out))
	}

	// The old password is refused: by the client with the old env, and by Redis itself.
	out, err = oneOff(t, d, envA, "send", "--count", "1", "--timeout", "5")
	clean("stale client output", out)
	stale := parseReport(t, out)
	if stale.Completed != 0 {
		t.Errorf("the old URL still works: %+v", stale)
	}
	t.Logf("old env client: exit %v, error %q", err, stale.Error)
	cmd := exec.Command("docker", "exec", "-i", d.Container(redisCtr), "sh", "-c",
		`read -r p; REDISCLI_AUTH=$p exec redis-cli --no-auth-warning --user celery ping`)
	cmd.Stdin = strings.NewReader(before["password"] + "\n")
	b, _ := cmd.CombinedOutput()
	clean("redis-cli output", string(b))
	reply := strings.TrimSpace(string(b))
	if !strings.Contains(reply, "WRONGPASS") && !strings.Contains(reply, "NOAUTH") {
		t.Errorf("Redis answers the old celery password with %q, want WRONGPASS/NOAUTH", reply)
	}
	t.Logf("FIGURE rotation with containers: %d of %d tasks queued before the rotation completed after it (lost %d); old password: %s",
		done.Completed, n, n-done.Completed, reply)
}
