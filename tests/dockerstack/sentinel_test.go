package dockerstack

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emailclient/emailclient-infra/components/redisconf"
	"github.com/emailclient/emailclient-infra/tests/celerytest"
	"github.com/emailclient/emailclient-infra/tests/declared"
	"github.com/emailclient/emailclient-infra/tests/dockertest"
)

// Logical names of the sentinel topology's containers (components/redisbroker.go).
const (
	primaryCtr  = "broker-redis-0"
	masterName  = "emailclient"
	sentinelPfx = "broker-sentinel-"
)

// shortHealthcheck is the container config of the tier-4 topology tests: no host port (sentinel mode
// refuses one), the offline base image and a short healthcheck schedule.
const shortHealthcheck = `{"hostPort":0,"baseImage":"` + dockertest.RedisBase + `","healthcheck":{"interval":"3s","timeout":"2s","retries":3,"startPeriod":"2s"}}`

// containerDeps is what each declared container depends on (the recorded dependencies: explicit
// DependsOn and the resources its inputs come from), for dockertest's dependency levels.
func containerDeps(res *declared.Result) map[string][]string {
	m := map[string][]string{}
	for _, c := range res.ByType(declared.ContainerType) {
		m[c.Name] = append([]string(nil), c.DependsOn...)
	}
	return m
}

// clientRun runs the reference email-service client in its container and parses its one JSON line.
func clientRun(t *testing.T, d *dockertest.Deployment, args ...string) (celerytest.Result, error) {
	t.Helper()
	out, err := d.Exec(t, emailCtr, append([]string{"python3", "-m", "emailworker.client"}, args...)...)
	noSecrets(t, "client output", out)
	var res celerytest.Result
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
		if err == nil {
			err = fmt.Errorf("client output is not one JSON line: %v: %q", jerr, lastLine(out))
		}
		return res, err
	}
	if err == nil && res.Error != "" {
		err = fmt.Errorf("client error: %s", res.Error)
	}
	return res, err
}

// sentinelCLI runs redis-cli against the Sentinel in a Sentinel container, with the Sentinels'
// password read from the uploaded file inside the container.
func sentinelCLI(t *testing.T, d *dockertest.Deployment, sentinel string, args ...string) (string, error) {
	t.Helper()
	script := `REDISCLI_AUTH=$(cat ` + redisconf.SentinelPasswordFile + `) exec redis-cli --no-auth-warning -p ` + strconv.Itoa(redisconf.SentinelPort) + ` "$@"`
	return d.Exec(t, sentinel, append([]string{"sh", "-c", script, "redis-cli"}, args...)...)
}

// primaryOf asks a Sentinel for the current primary and names it by the data node (logical container
// name) it points at, through the node's alias or its address on the broker network.
func primaryOf(t *testing.T, d *dockertest.Deployment, sentinel string, nodes []string) (node, addr string) {
	t.Helper()
	out, err := sentinelCLI(t, d, sentinel, "SENTINEL", "get-master-addr-by-name", masterName)
	if err != nil {
		t.Fatalf("SENTINEL get-master-addr-by-name in %s: %v", sentinel, err)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("SENTINEL get-master-addr-by-name %s in %s answered %q", masterName, sentinel, strings.TrimSpace(out))
	}
	addr = f[0] + ":" + f[1]
	for i, n := range nodes {
		ip, _ := get(d.Inspect(n), "NetworkSettings", "Networks", d.Network("broker-network"), "IPAddress").(string)
		if f[0] == fmt.Sprintf("redis-%d", i) || (ip != "" && f[0] == ip) {
			return n, addr
		}
	}
	return "", addr
}

// waitReplicasKnown waits until every Sentinel knows n replicas. A Sentinel learns them from the
// primary's INFO (every 10 s): until every Sentinel knows them, a failover would abort for want of a
// replica to promote.
func waitReplicasKnown(t *testing.T, d *dockertest.Deployment, sentinels []string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, s := range sentinels {
		for {
			out, err := sentinelCLI(t, d, s, "SENTINEL", "master", masterName)
			fields := strings.Fields(out)
			known := ""
			for i, f := range fields {
				if f == "num-slaves" && i+1 < len(fields) {
					known = fields[i+1]
				}
			}
			if err == nil && known == strconv.Itoa(n) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s knows %q replicas of %s after 60s, want %d", s, known, masterName, n)
			}
			time.Sleep(time.Second)
		}
	}
}

// TestSentinelFailoverWithContainers applies the dev stack in sentinel mode on the engine (3 data
// nodes, 3 Sentinels, the reference email-service worker), runs Celery through the Sentinels, kills the
// primary's container, measures the failover as the worker sees it and accounts for every queued
// task (celerytest.AssertCrashLoss).
func TestSentinelFailoverWithContainers(t *testing.T) {
	dockertest.Require(t)
	dockertest.EnsureBaseImages(t, "redis", "celery")
	cfg := localBases()
	cfg["topology"] = `{"mode":"sentinel","downAfterMilliseconds":2000,"failoverTimeoutMilliseconds":20000}`
	cfg["container"] = shortHealthcheck
	res := declare(t, "dev", cfg)

	nodes, sentinels := sentinelContainers(t, res)
	for _, s := range sentinels {
		in := containerInputs(t, res, s)
		if !slices.Equal(strs(in["command"]), []string{"sentinel"}) || in["wait"] != true {
			t.Fatalf("Sentinel %s: command %v wait %v, want [sentinel] and wait: true", s, in["command"], in["wait"])
		}
	}

	// A Sentinel's healthcheck (SENTINEL CKQUORUM) passes only once `quorum` Sentinels run, and every
	// Sentinel declares wait: true, so a Sentinel that depends on another Sentinel is never created by
	// `pulumi up`: the provider waits (waitTimeout) for the first one to turn healthy alone.
	deps := containerDeps(res)
	var chained []string
	for _, s := range sentinels {
		for _, dep := range deps[s] {
			if slices.Contains(sentinels, dep) {
				chained = append(chained, s+" -> "+dep)
			}
		}
	}
	if len(chained) > 0 {
		// Each Sentinel waits to be healthy, which needs a quorum of Sentinels: created one after
		// another, the first would never turn healthy and `pulumi up` would time out.
		t.Fatalf("Sentinels depend on each other (%s): they must depend on the data nodes only", strings.Join(chained, ", "))
	}

	d, took := apply(t, res, dockertest.ApplyOptions{DependsOn: deps})
	for _, c := range append(slices.Clone(nodes), sentinels...) {
		if h := d.Health(c); h != "healthy" {
			t.Fatalf("%s health = %q after Apply, want healthy", c, h)
		}
	}
	// Created alongside the data nodes, the Sentinels and the worker came up without a restart: the
	// worker waits until the primary accepts writes (a primary whose replicas have not synced refuses
	// them, NOREPLICAS, and the worker's first write at start would end it).
	for _, c := range append(slices.Clone(sentinels), emailCtr) {
		if n := num(get(d.Inspect(c), "RestartCount")); n != 0 {
			t.Fatalf("%s restarted %d times during the deploy; its log:\n%s", c, n, d.Logs(c))
		}
	}
	t.Logf("FIGURE sentinel dev stack: apply (%d images, %d data nodes, %d Sentinels, %d containers in all) until all healthy: %s",
		len(res.ByType(declared.ImageType)), len(nodes), len(sentinels), len(res.ByType(declared.ContainerType)), took.Round(100*time.Millisecond))

	oldPrimary, oldAddr := primaryOf(t, d, sentinels[0], nodes)
	if oldPrimary != primaryCtr {
		t.Fatalf("the Sentinels name %s (%s) as primary, want %s", oldAddr, oldPrimary, primaryCtr)
	}
	if out, err := sentinelCLI(t, d, sentinels[0], "SENTINEL", "ckquorum", masterName); err != nil || !strings.HasPrefix(out, "OK") {
		t.Fatalf("SENTINEL CKQUORUM: %q %v", strings.TrimSpace(out), err)
	}
	waitReplicasKnown(t, d, sentinels, len(nodes)-1)

	// The worker's broker URL goes through the Sentinels.
	for _, e := range strs(get(d.Inspect(emailCtr), "Config", "Env")) {
		if v, ok := strings.CutPrefix(e, "CELERY_BROKER_URL="); ok && !strings.HasPrefix(v, "sentinel://") {
			t.Fatalf("the email service's CELERY_BROKER_URL is not a sentinel:// URL")
		}
	}

	warm, err := clientRun(t, d, "send", "--count", "5", "--timeout", "60")
	if err != nil || warm.Completed != 5 {
		t.Fatalf("round trip through the Sentinels before the failover: %+v, %v\nemail-service logs:\n%s", warm, err, d.Logs(emailCtr))
	}
	t.Logf("FIGURE sentinel celery round trip: 5 tasks in %.3fs (client-measured) on %v", warm.RoundtripSeconds, warm.Workers)

	const n = 200
	queued, err := clientRun(t, d, "enqueue", "--count", strconv.Itoa(n))
	if err != nil || len(queued.TaskIDs) != n {
		t.Fatalf("enqueue %d: %d ids, %v", n, len(queued.TaskIDs), err)
	}

	// How many of them the worker had not taken yet (the queue is the list "celery" on the primary).
	inQueue := "?"
	if out, err := d.Exec(t, primaryCtr, "sh", "-c", `REDISCLI_AUTH=$(cat /run/redis/ops.password) exec redis-cli --no-auth-warning --user ops llen celery`); err == nil {
		inQueue = strings.TrimSpace(out)
	} else {
		t.Logf("LLEN celery on %s: %v", primaryCtr, err)
	}
	kill := time.Now()
	dockerCmd(t, "kill", d.Container(primaryCtr))
	if st, _ := get(d.Inspect(primaryCtr), "State", "Status").(string); st == "running" {
		t.Fatalf("%s still runs after docker kill", primaryCtr)
	}

	// The first task that round-trips after the kill went through the new primary.
	// Short attempts (5s each) so that the figure's resolution is a few seconds.
	var firstOK time.Duration
	var attempts int
	var lastErr error
	var timeline []string
	for time.Since(kill) < 90*time.Second {
		attempts++
		at := time.Since(kill)
		r, err := clientRun(t, d, "send", "--count", "1", "--timeout", "5")
		if err == nil && r.Completed == 1 {
			firstOK = time.Since(kill)
			timeline = append(timeline, fmt.Sprintf("%.1fs..%.1fs ok", at.Seconds(), firstOK.Seconds()))
			break
		}
		lastErr = fmt.Errorf("%v (completed %d, pending %d, errors %v)", err, r.Completed, r.Pending, r.Errors)
		timeline = append(timeline, fmt.Sprintf("%.1fs..%.1fs %s", at.Seconds(), time.Since(kill).Seconds(), map[bool]string{true: "error", false: "pending"}[err != nil]))
	}
	stalled := ""
	if firstOK == 0 && restartStalledWorker(t, d, "the failover") {
		stalled = fmt.Sprintf("the worker stalled (kombu < 5.4, celery#8030) and was restarted %.0fs after the kill", time.Since(kill).Seconds())
		for restarted := time.Now(); time.Since(restarted) < 60*time.Second; {
			attempts++
			r, err := clientRun(t, d, "send", "--count", "1", "--timeout", "5")
			if err == nil && r.Completed == 1 {
				firstOK = time.Since(kill)
				break
			}
			lastErr = fmt.Errorf("after the restart: %v (completed %d, pending %d, errors %v)", err, r.Completed, r.Pending, r.Errors)
		}
	}
	t.Logf("attempts after the kill: %s", strings.Join(timeline, "; "))
	// When the Sentinels switched: +switch-master in the first Sentinel's log (container clock).
	if out, err := exec.Command("docker", "logs", "-t", d.Container(sentinels[0])).CombinedOutput(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "+switch-master") {
				if ts, err := time.Parse(time.RFC3339Nano, strings.Fields(l)[0]); err == nil {
					t.Logf("FIGURE sentinel failover (containers): +switch-master %.1fs after docker kill", ts.Sub(kill).Seconds())
				}
				t.Logf("%s: %s", sentinels[0], l)
			}
		}
	}
	newPrimary, newAddr := primaryOf(t, d, sentinels[0], nodes)
	if newPrimary == primaryCtr || newPrimary == "" {
		t.Errorf("after killing %s the Sentinels name %s (%s) as primary, want a promoted replica\n%s logs:\n%s",
			primaryCtr, newAddr, newPrimary, sentinels[0], d.Logs(sentinels[0]))
	}
	if firstOK == 0 {
		t.Fatalf("no task round-tripped within 90s of killing %s (%d attempts, last: %v); primary now %s (%s), email-service status %v\nemail-service logs:\n%s",
			primaryCtr, attempts, lastErr, newAddr, newPrimary, get(d.Inspect(emailCtr), "State", "Status"), d.Logs(emailCtr))
	}

	if firstOK > 15*time.Second {
		// Sentinel switched within seconds: the rest is the worker reconnecting (kombu 5.2.4).
		t.Logf("the worker took %.1fs to serve a task again; email-service state %v, log tail:\n%s",
			firstOK.Seconds(), get(d.Inspect(emailCtr), "State", "Status"), tailLines(d.Logs(emailCtr), 40))
	}

	done, err := clientRun(t, d, append([]string{"collect", "--timeout", "120"}, queued.TaskIDs...)...)
	if err != nil {
		t.Errorf("collect the %d tasks queued before the kill: %v", n, err)
	}
	state, err := clientRun(t, d, "queue")
	if err != nil {
		t.Fatalf("the queue on the new primary: %v", err)
	}
	acc := celerytest.NewAccount(queued.TaskIDs, done, state, d.Logs(emailCtr))
	if stalled != "" {
		stalled = "; " + stalled
	}
	t.Logf("FIGURE sentinel failover (containers): primary %s (%s) -> %s (%s), first task after docker kill in %.1fs (%d attempts, down-after 2s), %d tasks enqueued just before the kill (%s still in the queue at the kill): %s%s",
		primaryCtr, oldAddr, newPrimary, newAddr, firstOK.Seconds(), attempts, n, inQueue, acc, stalled)

	after, err := clientRun(t, d, "send", "--count", "10", "--timeout", "60")
	if err != nil || after.Completed != 10 {
		st := get(d.Inspect(emailCtr), "State")
		t.Errorf("the worker does not keep working on the new primary (kombu 5.2.4 can stall after reconnecting): %+v, %v\nemail-service state %v\nemail-service logs:\n%s",
			after, err, st, d.Logs(emailCtr))
	} else {
		t.Logf("after the failover: 10 of 10 tasks in %.3fs on %v", after.RoundtripSeconds, after.Workers)
	}
	celerytest.AssertCrashLoss(t, acc, 1)
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// sentinelContainers are the declared data nodes (sorted: the initial primary first) and Sentinels of
// a sentinel topology, by container name; it fails the test unless there are at least 2 and 3.
func sentinelContainers(t *testing.T, res *declared.Result) (nodes, sentinels []string) {
	t.Helper()
	for _, c := range res.ByType(declared.ContainerType) {
		if _, isNode := res.RunFiles(c.Name); !isNode {
			continue // the email-service, a files carrier
		}
		switch {
		case strings.HasPrefix(c.Name, sentinelPfx):
			sentinels = append(sentinels, c.Name)
		case strings.HasPrefix(c.Name, redisCtr+"-"):
			nodes = append(nodes, c.Name)
		}
	}
	slices.Sort(nodes)
	slices.Sort(sentinels)
	if len(nodes) < 2 || len(sentinels) < 3 || nodes[0] != primaryCtr {
		t.Fatalf("the sentinel topology declares data nodes %v and Sentinels %v", nodes, sentinels)
	}
	return nodes, sentinels
}
