package dockerstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/tests/dockertest"
	"github.com/emailclient/emailclient-infra/tests/s3test"
)

// drillKeys is how many keys the host-loss drill writes; every second one has a TTL.
const drillKeys = 100_000

// drillTTL is the TTL written on key i (even i only).
func drillTTL(i int) time.Duration { return time.Duration(2+i%48) * time.Hour }

// writeDrillKeys writes drillKeys keys in pipelines of 5000.
func writeDrillKeys(t *testing.T, c *redis.Client) {
	t.Helper()
	ctx := context.Background()
	for start := 0; start < drillKeys; start += 5000 {
		p := c.Pipeline()
		for i := start; i < start+5000; i++ {
			ttl := time.Duration(0)
			if i%2 == 0 {
				ttl = drillTTL(i)
			}
			p.Set(ctx, fmt.Sprintf("drill:%06d", i), fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%64)), ttl)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// checkDrillKeys reads every key back with its TTL: the value must be the one written and the TTL
// at most what was written and no more below it than the time since writing began (read after
// each batch's reply).
func checkDrillKeys(t *testing.T, c *redis.Client, writing time.Time) (missing, wrong int) {
	t.Helper()
	ctx := context.Background()
	for start := 0; start < drillKeys; start += 5000 {
		p := c.Pipeline()
		gets, ttls := make([]*redis.StringCmd, 0, 5000), make([]*redis.DurationCmd, 0, 5000)
		for i := start; i < start+5000; i++ {
			k := fmt.Sprintf("drill:%06d", i)
			gets, ttls = append(gets, p.Get(ctx, k)), append(ttls, p.PTTL(ctx, k))
		}
		_, _ = p.Exec(ctx)
		elapsed := time.Since(writing)
		for j := range gets {
			i := start + j
			v, err := gets[j].Result()
			if err != nil {
				missing++
				continue
			}
			ttl := ttls[j].Val()
			okTTL := ttl < 0
			if i%2 == 0 {
				okTTL = ttl > 0 && ttl <= drillTTL(i) && drillTTL(i)-ttl <= elapsed
			}
			if v != fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%64)) || !okTTL {
				if wrong == 0 {
					t.Logf("first wrong key drill:%06d: value %q, TTL %v (written with %v, %v ago)", i, v, ttl, drillTTL(i), elapsed)
				}
				wrong++
			}
		}
	}
	return missing, wrong
}

// remoteArgs are the --remote-* flags the program declares in the backup container's command.
func remoteArgs(t *testing.T, cmd []string) []string {
	t.Helper()
	var out []string
	for i := 0; i+1 < len(cmd); i++ {
		if strings.HasPrefix(cmd[i], "--remote-") {
			out = append(out, cmd[i], cmd[i+1])
		}
	}
	if len(out) < 6 {
		t.Fatalf("the backup container's command declares no remote: %q", cmd)
	}
	return out
}

// destroyWithVolumes removes every container, volume and network of a deployment: the host and
// its disks are gone.
func destroyWithVolumes(t *testing.T, d *dockertest.Deployment) {
	t.Helper()
	filter := "label=" + dockertest.LabelKey + "=" + d.Suffix()
	if ids := strings.Fields(dockerCmd(t, "ps", "-aq", "--filter", filter)); len(ids) > 0 {
		dockerCmd(t, append([]string{"rm", "-f", "-v"}, ids...)...)
	}
	if ids := strings.Fields(dockerCmd(t, "volume", "ls", "-q", "--filter", filter)); len(ids) > 0 {
		dockerCmd(t, append([]string{"volume", "rm", "-f"}, ids...)...)
	}
}

// TestHostLossDrill (issue 31): the dev stack with backups to a real S3-compatible server
// (SeaweedFS on this host, reached by the backup container through the Docker gateway); 100,000
// keys, half with a TTL; a backup in the stack's own backup container (it uploads as the schedule
// does, with the credentials from its secret env); the whole stack and its volumes destroyed; a
// fresh deployment (empty volumes); then `redis-ops restore --remote latest`: every key and TTL back.
func TestHostLossDrill(t *testing.T) {
	dockertest.Require(t)
	s3 := s3test.Start(t)
	dockertest.EnsureBaseImages(t, "redis")
	buildOpsImage(t)
	bin := buildOps(t)
	bucket := s3.MakeBucket(t)

	cfg := map[string]string{
		"container":    `{"baseImage":"` + dockertest.RedisBase + `","healthcheck":{"interval":"2s","timeout":"1s","retries":3,"startPeriod":"2s"}}`,
		"emailService": `{"enabled":false}`,
		"operations": `{"build":"prebuilt","backup":{"enabled":true,"schedule":"0 3 1 1 *","volume":"redis-backups","remote":{"enabled":true,` +
			`"endpoint":"` + s3.ContainerEndpoint(t) + `","bucket":"` + bucket + `"}}}`,
	}
	secrets := map[string]string{"backupRemoteAccessKey": s3test.AccessKey, "backupRemoteSecretKey": s3test.SecretKey}
	res := declareWith(t, "dev", cfg, secrets)
	remote := remoteArgs(t, strs(containerInputs(t, res, opsBackup)["command"]))
	d1, took := apply(t, res, dockertest.ApplyOptions{DependsOn: containerDeps(res)})
	t.Logf("FIGURE host-loss drill: first deployment until Redis healthy: %s", took.Round(100*time.Millisecond))
	c := redis.NewClient(&redis.Options{Addr: d1.HostPort(t, redisCtr, "6379"), Username: "ops", Password: opsPassword})
	defer c.Close()
	// A key's TTL runs from its SET: elapsed is counted from before the first one.
	writing := time.Now()
	writeDrillKeys(t, c)
	t.Logf("FIGURE host-loss drill: wrote %d keys (%d with a TTL) in %s", drillKeys, drillKeys/2, time.Since(writing).Round(100*time.Millisecond))
	start := time.Now()

	out, err := d1.Exec(t, opsBackup, append([]string{"/redis-ops", "backup", "--source", "network", "--dir", "/backups"}, remote...)...)
	noSecrets(t, "backup output", out)
	if strings.Contains(out, s3test.SecretKey) {
		t.Error("the backup printed the remote secret key")
	}
	m := regexp.MustCompile(`backup /backups/(redis-backup-\S+\.rdb) size=(\S+) keys=(\d+)`).FindStringSubmatch(out)
	if err != nil || m == nil || !strings.Contains(out, "remote: uploaded "+m[1]) {
		t.Fatalf("backup with upload in the backup container: %v\n%s", err, out)
	}
	t.Logf("FIGURE host-loss drill: backup of %s keys (%s) taken and uploaded by the backup container: %s", m[3], m[2], time.Since(start).Round(100*time.Millisecond))
	if inspect := fmt.Sprint(d1.Inspect(opsBackup)["Args"]); strings.Contains(inspect, s3test.SecretKey) {
		t.Error("the remote secret key is on the backup container's command line")
	}

	// The host is lost: containers, data, backups and run volumes gone.
	destroyWithVolumes(t, d1)
	if out := dockerCmd(t, "volume", "ls", "-q", "--filter", "label="+dockertest.LabelKey+"="+d1.Suffix()); strings.TrimSpace(out) != "" {
		t.Fatalf("volumes left: %s", out)
	}

	// A new host: deploy again (empty volumes), then restore from the remote.
	start = time.Now()
	d2, _ := apply(t, res, dockertest.ApplyOptions{DependsOn: containerDeps(res)})
	redeployed := time.Since(start)
	c2 := redis.NewClient(&redis.Options{Addr: d2.HostPort(t, redisCtr, "6379"), Username: "ops", Password: opsPassword})
	if n := c2.DBSize(context.Background()).Val(); n != 0 {
		t.Fatalf("the new deployment holds %d keys: its volumes are not new", n)
	}
	c2.Close()
	creds := filepath.Join(t.TempDir(), "s3-credentials")
	if err := os.WriteFile(creds, []byte(s3test.AccessKey+"\n"+s3test.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"restore", "--redis-container", d2.Container(redisCtr), "--email-container", "", "--backup-container", d2.Container(opsBackup),
		"--remote", "--remote-endpoint", s3.Endpoint("127.0.0.1"), "--remote-bucket", bucket, "--remote-prefix", remote[5],
		"--remote-credentials-file", creds, "latest"}
	r := runOps(t, bin, "", args...)
	t.Logf("redis-ops %s (exit %d, %s):\n%s", strings.Join(args, " "), r.code, r.took.Round(100*time.Millisecond), r.out)
	if r.code != 0 || !strings.Contains(r.out, "downloaded "+m[1]) || !strings.Contains(r.out, "Restore done.") {
		t.Fatalf("restore from the remote: exit %d", r.code)
	}
	c3 := redis.NewClient(&redis.Options{Addr: d2.HostPort(t, redisCtr, "6379"), Username: "ops", Password: opsPassword})
	defer c3.Close()
	missing, wrong := checkDrillKeys(t, c3, writing)
	t.Logf("FIGURE host-loss drill: after destroy (containers and volumes): redeploy %s, restore from the remote (download, verify, lay in, healthy, key count) %s; %d of %d keys missing, %d with a wrong value or TTL",
		redeployed.Round(100*time.Millisecond), r.took.Round(100*time.Millisecond), missing, drillKeys, wrong)
	if missing+wrong > 0 {
		t.Errorf("after the restore from the remote: %d keys missing, %d wrong", missing, wrong)
	}
}
