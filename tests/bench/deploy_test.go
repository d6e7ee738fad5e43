package bench

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/emailclient/emailclient-infra/components"
	"github.com/emailclient/emailclient-infra/stacks"
	"github.com/emailclient/emailclient-infra/tests/engine"
)

const sectionDeploy = "6. Deploy time with the real Pulumi engine"

// defaultInterval is the declared healthcheck interval of Redis and the email-service.
const defaultInterval = components.DefaultHealthcheckInterval

// seedsHealthcheck is the compose seeds' healthcheck schedule, the baseline of the deploy time.
var seedsHealthcheck = map[string]string{"interval": "30s", "timeout": "10s", "startPeriod": "5s"} // retries: 3 in both

// beforeDeployWork is the revision before issue 28's faster deploy: its program is the baseline of
// the deploys, its deploy.sh and ops build.sh that of the no-op `make up`.
const beforeDeployWork = "79d802f"

// BenchmarkDeployTime measures the wall time of `pulumi up` (the real CLI, language host and provider
// plugins; images already built, nothing else changed: each repetition destroys the stack, then
// deploys it again) for the dev stack and the Sentinel topology with the declared defaults, against
// the program of beforeDeployWork in the same run (the email-service created only once Redis is
// healthy, the Sentinels only once the data nodes are) and the seeds' healthcheck schedule (interval
// 30s). Repetitions alternate the variants; without git history the baseline is left out, in a line.
// Then the wall time of a `make up` that changes nothing, ours against the deploy.sh and ops build.sh
// of beforeDeployWork, alternating.
// BENCH_DEPLOY_REPS (default 3) repetitions each. Where the engine toolchain is missing it says so in
// one line (in the report too) and measures nothing.
func BenchmarkDeployTime(b *testing.B) {
	if why := engine.Missing(); why != "" {
		Annotate(b, sectionDeploy, "Not run on this machine: %s.", why)
		b.Skip("deploy time: not run: " + why)
	}
	reps := EnvInt(b, "BENCH_DEPLOY_REPS", 3)
	const (
		ours   = "ours: the declared defaults (dev profile: the email-service created alongside Redis; a first deploy creates the Sentinels alongside the data nodes)"
		before = "before issue 28: the program of " + beforeDeployWork + " (the email-service created once Redis is healthy, the Sentinels once the data nodes are)"
		seeds  = "seeds' healthcheck schedule (every 30s)"
	)
	type variant struct {
		stack, name string
		project     *engine.Project
		times       []float64
	}
	names := []string{ours, before, seeds}
	why := engine.MissingRevision(beforeDeployWork)
	if why != "" {
		Annotate(b, sectionDeploy, "The program before issue 28 was not measured: %s.", why)
		names = []string{ours, seeds}
	}
	var variants []*variant
	for _, stack := range []string{"dev", "sentinel"} {
		for _, name := range names {
			v := &variant{stack: stack, name: name}
			revision := ""
			if name == before {
				revision = beforeDeployWork
			}
			p, _ := engine.NewIsolatedProjectAt(b, stack, revision)
			p.SetPath("profile", "dev")
			p.SetPath("container.hostPort", "0")
			if stack == "sentinel" {
				p.SetPath("topology.mode", "sentinel")
			}
			if name == seeds {
				for k, val := range seedsHealthcheck {
					p.SetPath("container.healthcheck."+k, val)
				}
			}
			// Build the images once; repetitions then measure deploys with images cached.
			p.Up()
			require.NoError(b, p.Destroy())
			v.project = p
			variants = append(variants, v)
		}
	}
	// Timed: the users' command, `pulumi up --yes --skip-preview` (what make up runs; the Automation
	// API adds its own CLI calls and reads the engine's events from a polled file).
	for i := 0; i < b.N; i++ {
		for rep := 0; rep < reps; rep++ {
			for k := range variants {
				v := variants[(k+rep)%len(variants)]
				start := time.Now()
				out, err := v.project.Run("pulumi", "up", "--yes", "--skip-preview", "--stack", v.stack)
				require.NoError(b, err, "pulumi up:\n%s", engine.Tail(out, 40))
				v.times = append(v.times, time.Since(start).Seconds())
				require.NoError(b, v.project.Destroy())
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	floor := physicalFloor(b)
	medians := map[string]float64{}
	for _, v := range variants {
		if v.name != seeds {
			// One more deploy through the Automation API for the engine's events.
			tl := v.project.Up()
			Annotate(b, sectionDeploy, "Timeline of a `pulumi up` of %s, %s, through the Automation API (the engine's events as they reached the test, each step from its ResourcePreEvent to its ResOutputsEvent; "+
				"the events are read from a file the API polls, so the first steps show late): %s. Physical floor on this machine, for comparison: %s.",
				v.stack, v.name, tl.Describe(v.project.Export()), floor)
			require.NoError(b, v.project.Destroy())
		}
		if v.name == ours {
			medians[v.stack], _, _ = Stats(v.times)
		}
		// Two tables per stack: ours against the program before issue 28, and against the seeds' schedule.
		for metric, baseline := range map[string]string{"": before, " (seeds' schedule)": seeds} {
			if v.name == ours || v.name == baseline {
				Record(b, Series{Section: sectionDeploy, Metric: "pulumi up wall time, " + v.stack + metric, Variant: v.name,
					Unit: "s", Better: "lower", Baseline: v.name == baseline, Paired: true, Values: v.times})
			}
		}
	}
	noop := noOpMakeUp(b, variants[0].project, reps, why == "")
	Annotate(b, sectionDeploy, "`pulumi up --yes --skip-preview --stack <stack>` (the CLI, as `make up` runs it) on a throwaway copy of the project (tests/engine: file backend, unique names, base images %s), "+
		"from an empty stack with the images already built (Image resources unchanged), until every container is created and healthy and waited for; "+
		"then `pulumi destroy`. Both stacks: dev profile, no host port; sentinel adds topology.mode sentinel (3 data nodes, 3 Sentinels). "+
		"Before issue 28: the program of %s, the ordering it had (the worker created only once Redis, every data node in sentinel mode, is healthy, as prod's default still does; the Sentinels only once the data nodes are). "+
		"Seeds: the seeds' healthcheck (interval 30s, timeout 10s, 3 retries, start period 5s). %d repetitions each, in rotating order, paired by repetition. "+
		"Issue 28's targets: dev <= 10 s, Sentinel <= 15 s, a no-op `make up` <= 5 s; medians here %.1f s, %.1f s and %.1f s.",
		"local/redis-base and local/celery-base by default", beforeDeployWork, reps, medians["dev"], medians["sentinel"], noop)
}

// noOpMakeUp times `make up` of p's stack when nothing changed, ours against beforeDeployWork's
// scripts (its build.sh linked redis-ops again every time; its deploy.sh previewed, then ran `up
// --skip-preview` and printed the outputs: the program ran twice), alternating, and returns ours'
// median. Without that revision (haveBefore false: no git history) it measures ours only.
func noOpMakeUp(b *testing.B, p *engine.Project, reps int, haveBefore bool) float64 {
	b.Helper()
	const metric = "make up with no change, dev"
	p.Up()
	defer func() { require.NoError(b, p.Destroy()) }()
	root, err := stacks.FindRoot()
	require.NoError(b, err)
	ours := "ours: make up (one run of the program; redis-ops linked only when changed)"
	run := map[string]func() error{ours: func() error { _, err := p.Make("up", "STACK="+p.Stack); return err }}
	baseline := "before: make up of " + beforeDeployWork + " (redis-ops linked again; preview, then up --skip-preview, then stack output)"
	if haveBefore {
		scripts := map[string]string{"deployment/scripts/deploy.sh": "deployment/scripts/deploy-before.sh", "deployment/docker/ops/build.sh": "deployment/docker/ops/build-before.sh"}
		for from, to := range scripts {
			out, err := exec.Command("git", "-C", root, "show", beforeDeployWork+":"+from).Output()
			require.NoError(b, err, "git show %s:%s", beforeDeployWork, from)
			text := strings.ReplaceAll(string(out), "/deployment/docker/ops/build.sh", "/deployment/docker/ops/build-before.sh")
			require.NoError(b, os.WriteFile(filepath.Join(p.Dir, to), []byte(text), 0o755))
		}
		run[baseline] = func() error {
			_, err := p.Run("bash", "deployment/scripts/deploy-before.sh", "up", p.Stack)
			return err
		}
	}
	names := slices.Sorted(maps.Keys(run))
	for _, name := range names { // warm: the first make up of the copy
		require.NoError(b, run[name]())
	}
	times := map[string][]float64{}
	for rep := 0; rep < reps; rep++ {
		for k := range names {
			name := names[(k+rep)%len(names)]
			start := time.Now()
			require.NoError(b, run[name]())
			times[name] = append(times[name], time.Since(start).Seconds())
		}
	}
	for _, name := range names {
		Record(b, Series{Section: sectionDeploy, Metric: metric, Variant: name, Unit: "s", Better: "lower",
			Baseline: name == baseline, Paired: true, Values: times[name]})
	}
	Annotate(b, sectionDeploy, "`make up STACK=dev` of the deployed dev stack above when nothing changed (the engine finds every resource unchanged), "+
		"with the copy's Go build cache warm, each script run once before the %d timed repetitions.", reps)
	med, _, _ := Stats(times[ours])
	return med
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
