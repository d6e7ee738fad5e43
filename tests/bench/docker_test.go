package bench

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/redis/go-redis/v9"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/dockertest"
)

const sectionDocker = "5. Time to healthy on the Docker engine"

// probeEvery is how often the readiness prober runs a check with docker exec.
const probeEvery = 500 * time.Millisecond

// prober runs check every probeEvery from start until it succeeds or stop is called, and keeps the
// time of the first success.
type prober struct {
	start time.Time
	first atomic.Int64 // nanoseconds after start; 0 = not yet
	done  chan struct{}
}

func startProber(start time.Time, check func() bool) *prober {
	p := &prober{start: start, done: make(chan struct{})}
	go func() {
		for {
			select {
			case <-p.done:
				return
			default:
			}
			if check() {
				p.first.Store(int64(time.Since(p.start)))
				return
			}
			time.Sleep(probeEvery)
		}
	}()
	return p
}

// wait returns the time to the first successful check, waiting up to limit for it.
func (p *prober) wait(b testing.TB, limit time.Duration) time.Duration {
	b.Helper()
	deadline := time.Now().Add(limit)
	for p.first.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(p.done)
	if p.first.Load() == 0 {
		b.Fatalf("readiness probe did not pass within %s", limit)
	}
	return time.Duration(p.first.Load())
}

// daemonCPU is the CPU time used so far by the Docker daemon's processes (dockerd, containerd and the
// containerd-shims), including the children they reaped (runc, the exec'd probes).
func daemonCPU(b testing.TB) time.Duration {
	b.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var ticks int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited
		}
		// pid (comm) state ppid ... utime(14) stime(15) cutime(16) cstime(17)
		open, close := strings.IndexByte(string(stat), '('), strings.LastIndexByte(string(stat), ')')
		if open < 0 || close < open {
			continue
		}
		comm := string(stat[open+1 : close])
		if comm != "dockerd" && comm != "containerd" && !strings.HasPrefix(comm, "containerd-shim") {
			continue
		}
		f := strings.Fields(string(stat[close+1:]))
		for _, k := range []int{11, 12, 13, 14} { // fields 14-17, counted from state (field 3)
			v, _ := strconv.ParseInt(f[k], 10, 64)
			ticks += v
		}
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ: 100 on Linux
}

func dockerOut(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// BenchmarkTimeToHealthy creates the Redis container exactly as the dev program declares it (tests/
// dockertest with the program's image, network, volumes, uploads and healthcheck; built FROM the
// local base image) and measures container create -> Docker reports healthy, and create -> the
// image's healthcheck first passes (run with docker exec every 0.5 s), for an empty data volume and
// for one holding BENCH_DOCKER_MB (default 1024) MiB; BENCH_DOCKER_REPS (default 2) repetitions
// each. Baseline: a stock redis-server in the same base image (no config, no auth) with the same
// healthcheck timing and `redis-cli ping` as the check.
func BenchmarkTimeToHealthy(b *testing.B) {
	dockertest.Require(b)
	dockertest.EnsureBaseImages(b, "redis")
	reps := EnvInt(b, "BENCH_DOCKER_REPS", 2)
	mb := EnvInt(b, "BENCH_DOCKER_MB", 1024)
	maxmemory := strconv.Itoa(2*mb+256) + "mb"
	res, err := declared.Run("dev", declared.Options{Config: map[string]string{
		"container": `{"baseImage":"` + dockertest.RedisBase + `"}`,
		"redis":     `{"maxmemory":"` + maxmemory + `"}`,
	}})
	if err != nil {
		b.Fatal(err)
	}
	// Only the Redis side: its image, network, volumes and container (not the email service).
	var rs []dockertest.Resource
	for _, r := range res.Resources {
		if strings.HasPrefix(r.Name, "email-service") {
			continue
		}
		rs = append(rs, dockertest.Resource{Type: r.Type, Name: r.Name, Inputs: r.Inputs})
	}
	const ctr = "broker-redis"
	wd, err := os.Getwd() // build contexts are declared relative to the program's working directory
	if err != nil {
		b.Fatal(err)
	}
	d := dockertest.Apply(b, rs, dockertest.ApplyOptions{RepoRoot: wd, ImageFor: func(string) string { return "broker-image" }})
	real := d.Container(ctr)
	healthcheck := func() bool {
		_, err := dockerOut("exec", real, "/usr/local/bin/redis-healthcheck")
		return err == nil
	}
	// One measurement of ours: remove the container (the named volumes stay), then Replace creates,
	// uploads, starts and waits for healthy.
	measure := func() (healthy, ready time.Duration) {
		if out, err := dockerOut("rm", "-f", real); err != nil {
			b.Fatalf("docker rm: %v: %s", err, out)
		}
		start := time.Now()
		p := startProber(start, healthcheck)
		d.Replace(b, ctr)
		healthy = time.Since(start)
		return healthy, p.wait(b, time.Minute)
	}
	var emptyH, emptyR, fullH, fullR, stockH, stockR []float64

	// The stock container: the base image's redis-server, no config, with our healthcheck schedule
	// (its test is `redis-cli ping`, the stock server having no password).
	declaredHC, _ := res.Get(declared.ContainerType, ctr)
	hc := declaredHC.Inputs["healthcheck"].ObjectValue().Mappable()
	hc["tests"] = []any{"CMD", "redis-cli", "ping"}
	const stockCtr = "bench-stock-redis"
	sd := dockertest.Apply(b, []dockertest.Resource{{Type: declared.ContainerType, Name: stockCtr, Inputs: resource.NewPropertyMapFromMap(map[string]any{
		"name": stockCtr, "image": dockertest.RedisBase, "command": []any{"redis-server"}, "healthcheck": hc, "wait": true, "waitTimeout": 180,
		"logDriver": "json-file", "logOpts": declaredHC.Inputs["logOpts"].Mappable(),
	})}}, dockertest.ApplyOptions{ImageFor: func(string) string { return dockertest.RedisBase }})
	stockReal := sd.Container(stockCtr)

	// Full volume first: load through the published port as the ops user.
	c := redis.NewClient(&redis.Options{Addr: d.HostPort(b, ctr, "6379"), Username: redisconf.OpsUser,
		Password: declared.MockPassword("broker-ops-password")})
	defer c.Close()
	start := time.Now()
	keys := fillBytes(b, c, mb)
	if err := c.BgRewriteAOF(context.Background()).Err(); err != nil && !strings.Contains(err.Error(), "already in progress") {
		b.Fatal(err)
	}
	time.Sleep(time.Second)
	waitPersistenceIdle(b, c)
	size, _ := dockerOut("run", "--rm", "-v", d.Volume("broker-data")+":/data", dockertest.RedisBase, "du", "-sh", "/data")
	Annotate(b, sectionDocker, "Full volume: %d MiB in %d incompressible 64 KiB strings written through the published port in %s, then BGREWRITEAOF (RDB preamble); `du -sh /data`: %s.",
		mb, keys, time.Since(start).Round(time.Second), strings.Fields(size + " ?")[0])
	c.Close()
	for i := 0; i < b.N; i++ {
		for rep := 0; rep < reps; rep++ {
			h, r := measure()
			fullH, fullR = append(fullH, h.Seconds()), append(fullR, r.Seconds())
		}
		// Empty volume: stop, wipe the data volume, measure.
		for rep := 0; rep < reps; rep++ {
			if out, err := dockerOut("stop", real); err != nil {
				b.Fatalf("docker stop: %v: %s", err, out)
			}
			if out, err := dockerOut("run", "--rm", "-v", d.Volume("broker-data")+":/data", dockertest.RedisBase,
				"sh", "-c", "rm -rf /data/* /data/.[!.]* 2>/dev/null; ls -A /data | wc -l"); err != nil || out != "0" {
				b.Fatalf("wipe the data volume: %v: %s", err, out)
			}
			h, r := measure()
			emptyH, emptyR = append(emptyH, h.Seconds()), append(emptyR, r.Seconds())
		}
		// Stock: same base image, redis-server with no config, created the same way (dockertest: docker
		// create, then start, awaited by the same healthcheck schedule as ours).
		for rep := 0; rep < reps; rep++ {
			if out, err := dockerOut("rm", "-f", stockReal); err != nil {
				b.Fatalf("docker rm: %v: %s", err, out)
			}
			start := time.Now()
			p := startProber(start, func() bool {
				out, err := dockerOut("exec", stockReal, "redis-cli", "ping")
				return err == nil && out == "PONG"
			})
			sd.Replace(b, stockCtr)
			stockH = append(stockH, time.Since(start).Seconds())
			stockR = append(stockR, p.wait(b, time.Minute).Seconds())
		}
	}
	// The steady-state price of a healthcheck: daemon-side CPU of one probe (dockerd, containerd and
	// the shims, with the runc and probe processes they reaped), ours against the stock probe and
	// against an exec of `true` (the exec machinery alone), interleaved.
	probes := map[string][]float64{}
	probeCmds := []struct {
		name string
		args []string
	}{
		{"ours: the image's redis-healthcheck (authenticated PING, persistence status)", []string{"exec", real, "/usr/local/bin/redis-healthcheck"}},
		{"stock: redis-cli ping", []string{"exec", stockReal, "redis-cli", "ping"}},
		{"docker exec of `true` (the exec machinery alone)", []string{"exec", real, "true"}},
	}
	const probesPerRep = 10
	for rep := 0; rep < reps+1; rep++ {
		for _, pc := range probeCmds {
			before := daemonCPU(b)
			for k := 0; k < probesPerRep; k++ {
				if out, err := dockerOut(pc.args...); err != nil {
					b.Fatalf("%s: %v: %s", pc.name, err, out)
				}
			}
			probes[pc.name] = append(probes[pc.name], (daemonCPU(b)-before).Seconds()*1000/probesPerRep)
		}
	}
	b.ReportMetric(0, "ns/op")
	for i, pc := range probeCmds {
		Record(b, Series{Section: sectionDocker, Metric: "daemon-side CPU per healthcheck probe", Variant: pc.name, Unit: "ms", Better: "lower",
			Baseline: i == 1, Values: probes[pc.name]})
	}
	med, _, _ := Stats(probes[probeCmds[0].name])
	Annotate(b, sectionDocker, "Probe cost: CPU time (utime+stime, with reaped children) of dockerd, containerd and every containerd-shim over %d docker exec runs of each probe, %d repetitions interleaved; "+
		"the docker CLI's own CPU is not counted (Docker runs the healthcheck itself). Steady state, ours at %.0f ms a probe: every %s (ours) %.1f%% of one core per container, "+
		"every 5s (our former default) %.1f%%, every 30s (the seeds') %.2f%%.", probesPerRep, reps+1, med, defaultInterval, percentOfCore(med, defaultInterval), percentOfCore(med, "5s"), percentOfCore(med, "30s"))
	for _, m := range []struct {
		metric string
		empty  []float64
		full   []float64
		stock  []float64
	}{
		{"create -> Docker reports healthy", emptyH, fullH, stockH},
		{"create -> healthcheck first passes (docker exec every 0.5 s)", emptyR, fullR, stockR},
	} {
		Record(b, Series{Section: sectionDocker, Metric: m.metric + ", empty volume", Variant: "ours: declared dev container, empty volume", Unit: "s", Better: "lower", Values: m.empty})
		Record(b, Series{Section: sectionDocker, Metric: m.metric + ", empty volume", Variant: "stock redis-server in the same base image, empty", Unit: "s", Better: "lower", Baseline: true, Values: m.stock})
		Record(b, Series{Section: sectionDocker, Metric: m.metric + ", full vs empty volume", Variant: "ours: declared dev container, " + strconv.Itoa(mb) + " MiB volume", Unit: "s", Better: "lower", Values: m.full})
		Record(b, Series{Section: sectionDocker, Metric: m.metric + ", full vs empty volume", Variant: "ours: declared dev container, empty volume", Unit: "s", Better: "lower", Baseline: true, Values: m.empty})
	}
	Annotate(b, sectionDocker, "Ours: the dev program's Redis image (built FROM %s), network, volumes, files carrier (redis.conf, users.acl, ops.password) and healthcheck (interval %v, start period %v) "+
		"created with tests/dockertest, with redis.maxmemory=%s so the data fits (the dev default is 512mb). Create = `docker create`, `docker start`, wait until Docker reports healthy. "+
		"Stock: redis-server in the same base image with no config, created the same way with the same healthcheck schedule (test `redis-cli ping`). "+
		"Docker 20.10 runs the first healthcheck one interval after start (no start-interval), so create -> healthy is about one interval for both; the docker exec probe (every 0.5 s) shows when Redis is actually ready. "+
		"%d repetitions each: the full volume first (data kept across container replacement), then the wiped volume, then stock.", dockertest.RedisBase, hc["interval"], hc["startPeriod"], maxmemory, reps)
}

// percentOfCore is the share of one core, in percent, that a probe of ms milliseconds every interval
// (a Go duration) costs.
func percentOfCore(ms float64, interval string) float64 {
	d, err := time.ParseDuration(interval)
	if err != nil || d <= 0 {
		return 0
	}
	return ms / float64(d.Milliseconds()) * 100
}
