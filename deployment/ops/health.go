package ops

import (
	"context"
	"fmt"
	"strings"
)

// runHealth prints one line and returns an exit code for cron/monitoring.
func runHealth(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("health", "[flags]", `
Checks Redis with an authenticated PING (the reply must be PONG) and INFO, and
prints one line: OK, or the first problem found. Checks, in order: reachable,
authenticated, not loading, persistence (rdb_last_bgsave_status,
aof_last_write_status, aof_last_bgrewrite_status), memory (used_memory over
--memory-warn percent of maxmemory), evictions (evicted_keys > 0 since start),
replication (a replica whose link to its primary is down), and with --sentinels
the Sentinels' view (the current primary of --master-name, and a quorum). The
line shows the node's role, its replicas and their lag, and the Sentinel view.`)
	c := e.addConnFlags(fs)
	memWarn := fs.Float64("memory-warn", 90, "memory threshold in percent of maxmemory (ignored when maxmemory is 0)")
	sf := e.addSentinelFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c.markSet(fs)
	sentinels, err := sf.list()
	if err != nil {
		return err
	}
	line, err := checkHealth(ctx, e, c, *memWarn)
	if err == nil && len(sentinels) > 0 {
		var pw, view string
		if pw, err = sf.password(e); err == nil {
			if view, err = sentinelView(ctx, sentinels, sf.master, pw); err == nil {
				line += " " + view
			}
		}
	}
	if err != nil {
		code := exitCode(err)
		if code == ExitUsage {
			return err // a bad --addr, --url or --password-file: not a verdict, a usage error on stderr
		}
		fmt.Fprintf(e.stdout, "CRITICAL %s: %v\n", codeName(code), err)
		return withCode(code, errReported)
	}
	fmt.Fprintln(e.stdout, line)
	return nil
}

// codeName names an exit code for the health line.
func codeName(code int) string {
	return map[int]string{
		ExitUnreachable: "unreachable", ExitAuth: "auth", ExitPersistence: "persistence",
		ExitMemory: "memory", ExitEvictions: "evictions", ExitLoading: "loading", ExitError: "error",
		ExitTopology: "topology", ExitRemote: "remote",
	}[code]
}

// checkHealth returns the OK line or an error carrying the exit code.
func checkHealth(ctx context.Context, e *env, c *connFlags, memWarn float64) (string, error) {
	client, err := c.connect(ctx, e)
	if err != nil {
		return "", err
	}
	defer client.Close()
	inf, err := fetchInfo(ctx, client)
	if err != nil {
		return "", err
	}
	summary := healthSummary(inf)
	if inf["loading"] == "1" {
		return "", withCode(ExitLoading, fmt.Errorf("loading data (%s)", summary))
	}
	if p := inf.persistenceProblem(); p != "" {
		return "", withCode(ExitPersistence, fmt.Errorf("%s (Redis refuses writes) %s", p, summary))
	}
	if pct, ok := inf.memoryPercent(); ok && pct >= memWarn {
		return "", withCode(ExitMemory, fmt.Errorf("memory %.1f%% >= %.0f%% of maxmemory (%s)", pct, memWarn, summary))
	}
	repl, problem := replicationSummary(inf)
	if problem != "" {
		return "", withCode(ExitTopology, fmt.Errorf("%s (%s)", problem, summary))
	}
	if repl != "" {
		summary += " " + repl
	}
	if n := inf.int("evicted_keys"); n > 0 {
		return "", withCode(ExitEvictions, fmt.Errorf("%d keys evicted since start, policy %s (%s)", n, inf["maxmemory_policy"], summary))
	}
	return "OK " + summary, nil
}

// healthSummary is the shared tail of the health line.
func healthSummary(inf info) string {
	mem := humanBytes(inf.int("used_memory"))
	if pct, ok := inf.memoryPercent(); ok {
		mem = fmt.Sprintf("%s/%s (%.1f%%)", mem, humanBytes(inf.int("maxmemory")), pct)
	}
	aof := "off"
	if inf["aof_enabled"] == "1" {
		aof = inf["aof_last_write_status"]
	}
	return strings.Join([]string{
		"redis " + inf["redis_version"],
		"up " + humanDuration(inf.int("uptime_in_seconds")),
		"mem " + mem,
		fmt.Sprintf("clients %d", inf.int("connected_clients")),
		fmt.Sprintf("keys %d", inf.totalKeys()),
		fmt.Sprintf("evicted %d", inf.int("evicted_keys")),
		"rdb " + inf["rdb_last_bgsave_status"],
		"aof " + aof,
	}, " ")
}
