package dockerstack

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/dockertest"
)

// faultsConfig is the dev stack config with the Redis healthcheck schedule shortened.
func faultsConfig() map[string]string {
	cfg := localBases()
	cfg["container"] = `{"baseImage":"` + dockertest.RedisBase + `","healthcheck":{"interval":"3s","timeout":"2s","retries":3,"startPeriod":"2s"}}`
	return cfg
}

// opsShell runs a shell script in the Redis container with REDISCLI_AUTH set from the uploaded ops
// password file (never on a command line here).
const opsAuth = `REDISCLI_AUTH=$(cat /run/redis/ops.password); export REDISCLI_AUTH; `

// TestFaultsWithContainers (issue 7, Docker side): SIGKILL of the Redis container under a write load,
// and a full data volume.
func TestFaultsWithContainers(t *testing.T) {
	dockertest.Require(t)
	dockertest.EnsureBaseImages(t, "redis", "celery")

	t.Run("KillUnderLoad", func(t *testing.T) {
		res := declare(t, "dev", faultsConfig())
		d, took := apply(t, res, dockertest.ApplyOptions{})
		t.Logf("apply until Redis healthy: %s", took.Round(100*time.Millisecond))
		real := d.Container(redisCtr)

		// Steady write load: one redis-cli as ops repeating INCR; every reply line is an acknowledged write
		// (redis-cli flushes stdout after each reply).
		load := exec.Command("docker", "exec", real, "sh", "-c",
			opsAuth+`exec redis-cli --no-auth-warning --user ops -r -1 INCR faults:counter`)
		stdout, err := load.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := load.Start(); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var lastAcked, acks int64
		var firstAck time.Time
		var other []string
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				n, err := strconv.ParseInt(strings.TrimPrefix(line, "(integer) "), 10, 64)
				mu.Lock()
				if err != nil {
					if len(other) < 5 {
						other = append(other, line)
					}
				} else {
					if acks == 0 {
						firstAck = time.Now()
					}
					acks++
					lastAcked = max(lastAcked, n)
				}
				mu.Unlock()
			}
		}()
		time.Sleep(4 * time.Second)
		mu.Lock()
		if acks == 0 {
			mu.Unlock()
			_ = load.Process.Kill()
			t.Fatalf("no write acknowledged under load: %v", other)
		}
		mu.Unlock()
		killAt := time.Now()
		dockerCmd(t, "kill", "-s", "KILL", real)
		select {
		case <-readDone:
		case <-time.After(30 * time.Second):
			_ = load.Process.Kill()
			<-readDone
		}
		_ = load.Wait()
		mu.Lock()
		acked, count, loadFor := lastAcked, acks, killAt.Sub(firstAck)
		mu.Unlock()
		rate := float64(count) / loadFor.Seconds()

		restartedByPolicy := false
		if st, _ := get(d.Inspect(redisCtr), "State", "Status").(string); st == "running" || st == "restarting" {
			restartedByPolicy = true
		}
		start := time.Now()
		if out, err := exec.Command("docker", "start", real).CombinedOutput(); err != nil {
			t.Logf("docker start: %v: %s", err, strings.TrimSpace(string(out)))
		}
		d.WaitHealthy(t, redisCtr, 90*time.Second)
		back := time.Since(start)
		out, err := redisCLI(t, d, "get", "faults:counter")
		if err != nil {
			t.Fatalf("GET after restart: %v", err)
		}
		after, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			t.Fatalf("GET faults:counter after restart = %q", strings.TrimSpace(out))
		}
		lost := max(acked-after, 0)
		t.Logf("FIGURE kill -9 under load (docker kill -s KILL): %d writes acknowledged in %s (%.0f/s, last acked value %d), value after docker start %d: lost %d acknowledged writes (%.3fs worth); healthy again %s after start (restart policy restarted it first: %v)",
			count, loadFor.Round(10*time.Millisecond), rate, acked, after, lost, float64(lost)/rate, back.Round(100*time.Millisecond), restartedByPolicy)
		if float64(lost) > rate*1.0+1 {
			t.Errorf("lost %d acknowledged writes, more than one second's worth (%.0f/s)", lost, rate)
		}
	})

	t.Run("DiskFull", func(t *testing.T) {
		res := declare(t, "dev", faultsConfig())
		in := containerInputs(t, res, redisCtr)
		user, _ := in["user"].(string)
		uid, gid, ok := strings.Cut(user, ":")
		if _, err := strconv.Atoi(uid); err != nil || !ok {
			t.Fatalf("declared Redis user %q is not uid:gid", user)
		}
		vr, ok := res.Get(declared.VolumeType, dataVolume)
		if !ok {
			t.Fatalf("the program declares no volume %s", dataVolume)
		}
		volName := dataVolume
		if v, ok := vr.Inputs["name"]; ok && v.IsString() && v.StringValue() != "" {
			volName = v.StringValue()
		}
		// dockertest names volumes <declared name>-<suffix> and `docker volume create` of an existing
		// name keeps it: pre-create the data volume as an 8 MiB tmpfs owned by the declared user.
		suffix := dockertest.MakeSuffix(t.Name())
		real := volName + "-" + suffix
		t.Cleanup(func() { _ = exec.Command("docker", "volume", "rm", "-f", real).Run() })
		dockerCmd(t, "volume", "create", "--driver", "local", "--label", dockertest.LabelKey+"="+suffix,
			"--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=8m,uid="+uid+",gid="+gid, real)
		d, _ := apply(t, res, dockertest.ApplyOptions{Suffix: suffix})
		if d.Volume(dataVolume) != real {
			t.Fatalf("data volume is %s, want the pre-created %s", d.Volume(dataVolume), real)
		}
		if df, err := d.Exec(t, redisCtr, "df", "-k", "/data"); err == nil {
			t.Logf("data volume: %s", lastLine(df))
		}
		if out, err := redisCLI(t, d, "set", "faults:small", "still-readable"); err != nil || strings.TrimSpace(out) != "OK" {
			t.Fatalf("SET before filling: %q %v", strings.TrimSpace(out), err)
		}

		// Fill through the ops user until writes are refused.
		start := time.Now()
		fill, err := d.Exec(t, redisCtr, "sh", "-c", opsAuth+
			`v=$(head -c 49152 /dev/zero | tr '\0' x); redis-cli --no-auth-warning --user ops -r 400 APPEND faults:fill "$v" | grep -v '^[0-9]' | sort | uniq -c | head -n 5`)
		if err != nil {
			t.Fatalf("fill: %v", err)
		}
		t.Logf("fill replies other than a length: %s", strings.TrimSpace(fill))
		var refused string
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			out, _ := redisCLI(t, d, "set", "faults:probe", "x")
			if r := strings.TrimSpace(out); strings.Contains(r, "MISCONF") || strings.Contains(r, "No space") {
				refused = r
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if refused == "" {
			t.Fatalf("writes are still accepted after filling the 8 MiB volume")
		}
		refusedAfter := time.Since(start)
		filled, _ := redisCLI(t, d, "strlen", "faults:fill")
		d.WaitStatus(t, redisCtr, "unhealthy", 60*time.Second)
		unhealthyAfter := time.Since(start)
		if st, _ := get(d.Inspect(redisCtr), "State", "Status").(string); st != "running" {
			t.Errorf("Redis status = %q, want running", st)
		}
		got, err := redisCLI(t, d, "get", "faults:small")
		if err != nil || strings.TrimSpace(got) != "still-readable" {
			t.Errorf("read while the disk is full: %q %v", strings.TrimSpace(got), err)
		}
		t.Logf("FIGURE disk full (8 MiB tmpfs volume): %s bytes appended, writes refused after %s with %q; container unhealthy after %s (%s); reads still work",
			strings.TrimSpace(filled), refusedAfter.Round(100*time.Millisecond), lastLine(refused), unhealthyAfter.Round(100*time.Millisecond), lastLine(healthLog(t, d)))
	})
}
