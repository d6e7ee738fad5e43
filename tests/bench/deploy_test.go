package bench

import (
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/tests/engine"
)

const sectionDeploy = "6. Deploy time with the real Pulumi engine"

// defaultInterval is the declared healthcheck interval of Redis and the email-service.
const defaultInterval = components.DefaultHealthcheckInterval

// seedsHealthcheck is the compose seeds' healthcheck schedule, the baseline of the deploy time.
var seedsHealthcheck = map[string]string{"interval": "30s", "timeout": "10s", "startPeriod": "5s"} // retries: 3 in both

// BenchmarkDeployTime measures the wall time of `pulumi up` (the real CLI, language host and provider
// plugins; images already built, nothing else changed: each repetition destroys the stack, then
// deploys it again) for the dev stack and the Sentinel topology, with our healthcheck schedule, our
// former one (every 5s) and, as the baseline in the same run, the seeds' (interval 30s), repetitions
// alternating.
// BENCH_DEPLOY_REPS (default 3) repetitions each. Where the engine toolchain is missing it says so in
// one line (in the report too) and measures nothing.
func BenchmarkDeployTime(b *testing.B) {
	if why := engine.Missing(); why != "" {
		Annotate(b, sectionDeploy, "Not run on this machine: %s.", why)
		b.Skip("deploy time: not run: " + why)
	}
	reps := EnvInt(b, "BENCH_DEPLOY_REPS", 3)
	type variant struct {
		stack, name string
		baseline    bool
		project     *engine.Project
		times       []float64
		last        *engine.Timeline
		critical    string
	}
	var variants []*variant
	for _, stack := range []string{"dev", "sentinel"} {
		// Ours (the declared default), the seeds' schedule (the baseline) and our former default, 5s
		// (before and after in the same run).
		for _, every := range []string{"", "30s", "5s"} {
			v := &variant{stack: stack, name: "ours: declared healthcheck (every " + defaultInterval + ")"}
			p, _ := engine.NewIsolatedProject(b, stack)
			p.SetPath("profile", "dev")
			p.SetPath("container.hostPort", "0")
			if stack == "sentinel" {
				p.SetPath("topology.mode", "sentinel")
			}
			switch every {
			case "30s":
				v.name, v.baseline = "seeds' healthcheck schedule (every 30s)", true
				for k, val := range seedsHealthcheck {
					p.SetPath("container.healthcheck."+k, val)
				}
			case "5s":
				v.name = "ours before 2026-12-05: healthcheck every 5s"
				for _, key := range []string{"container.healthcheck", "emailService.healthcheck"} {
					p.SetPath(key+".interval", every)
				}
			}
			// Build the images once; repetitions then measure deploys with images cached.
			p.Up()
			require.NoError(b, p.Destroy())
			v.project = p
			variants = append(variants, v)
		}
	}
	for i := 0; i < b.N; i++ {
		for rep := 0; rep < reps; rep++ {
			for k := range variants {
				v := variants[(k+rep)%len(variants)]
				start := time.Now()
				v.last = v.project.Up()
				v.times = append(v.times, time.Since(start).Seconds())
				if !v.baseline && v.name == variants[0].name {
					v.critical = v.last.Describe(v.project.Export())
				}
				require.NoError(b, v.project.Destroy())
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	floor := physicalFloor(b)
	for _, v := range variants {
		if v.critical != "" {
			Annotate(b, sectionDeploy, "Timeline of the last `pulumi up` of %s with ours (the engine's events, each step from its ResourcePreEvent to its ResOutputsEvent): %s. "+
				"Physical floor on this machine, for comparison: %s.", v.stack, v.critical, floor)
		}
	}
	for _, v := range variants {
		Record(b, Series{Section: sectionDeploy, Metric: "pulumi up wall time, " + v.stack, Variant: v.name,
			Unit: "s", Better: "lower", Baseline: v.baseline, Values: v.times})
	}
	Annotate(b, sectionDeploy, "`pulumi up --yes` of a throwaway copy of the project (tests/engine: file backend, unique names, base images %s), "+
		"from an empty stack with the images already built (Image resources unchanged), until every container is created and Redis (and each Sentinel) is healthy and waited for; "+
		"then `pulumi destroy`. Both stacks: dev profile, no host port; sentinel adds topology.mode sentinel (3 data nodes, 3 Sentinels). "+
		"Baseline: the same stack with the seeds' healthcheck (interval 30s, timeout 10s, 3 retries, start period 5s). "+
		"Also with our former default, every 5s for Redis (and each Sentinel) and the email-service: the deploy before and after in the same run. "+
		"Why %s: the provider checks a waited-for container's health once a second after starting it, so a first probe that ends just before a check saves a second per wave (components.Healthcheck). %d repetitions each, in rotating order.",
		"local/redis-base and local/celery-base by default", defaultInterval, reps)
}

// physicalFloor measures what no deploy of a healthy Redis can beat here: creating and starting a
// container of the Redis base image, plus one run of a probe inside it (median of 5 each).
func physicalFloor(b *testing.B) string {
	b.Helper()
	redisBase, _ := engine.BaseImages(b)
	var starts, probes []float64
	for range 5 {
		name := fmt.Sprintf("bench-floor-%d", time.Now().UnixNano())
		start := time.Now()
		if out, err := exec.Command("docker", "run", "-d", "--name", name, redisBase, "sleep", "60").CombinedOutput(); err != nil {
			b.Fatalf("docker run: %v: %s", err, out)
		}
		starts = append(starts, time.Since(start).Seconds())
		start = time.Now()
		if out, err := exec.Command("docker", "exec", name, "redis-cli", "--version").CombinedOutput(); err != nil {
			b.Fatalf("docker exec: %v: %s", err, out)
		}
		probes = append(probes, time.Since(start).Seconds())
		_ = exec.Command("docker", "rm", "-f", name).Run()
	}
	s, _, _ := Stats(starts)
	p, _, _ := Stats(probes)
	return fmt.Sprintf("container create+start %.2fs + one exec probe %.2fs = %.2fs per container waited for healthy, "+
		"plus one healthcheck interval (%s) before Docker 20.10 runs the first probe (no start_interval)", s, p, s+p, defaultInterval)
}
