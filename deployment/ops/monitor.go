package ops

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// runMonitor refreshes a dashboard every --interval until Ctrl-C or --count.
func runMonitor(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("monitor", "[flags]", `
Live dashboard: memory vs maxmemory with warning thresholds, clients, ops/s,
keys, evicted/rejected connections, AOF/RDB status, uptime and Celery queue
lengths. Redraws in place on a terminal; prints one line per tick when stdout
is not a terminal or with --plain. Stops on Ctrl-C or after --count ticks.
Celery queues are --queues plus those named in _kombu.binding.* sets (found
once at start with SCAN).`)
	c := e.addConnFlags(fs)
	interval := fs.Duration("interval", 5*time.Second, "refresh interval")
	count := fs.Int("count", 0, "stop after this many ticks (0 = until Ctrl-C)")
	plain := fs.Bool("plain", false, "one line per tick even on a terminal")
	memWarn := fs.Float64("memory-warn", 90, "memory warning threshold, percent of maxmemory")
	queues := fs.String("queues", "celery", "comma-separated Celery queues to show")
	if err := parse(fs, args); err != nil {
		return err
	}
	c.markSet(fs)
	client, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer client.Close()
	names, err := discoverQueues(ctx, client, strings.Split(*queues, ","))
	if err != nil {
		return err
	}
	draw := !*plain && e.isTerminal(e.stdout)
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	for tick := 1; ; tick++ {
		inf, cel, err := sample(ctx, client, names)
		if ctx.Err() != nil {
			return nil // Ctrl-C during a call is a clean exit
		}
		if err != nil {
			return err
		}
		if draw {
			drawDashboard(e.stdout, e.now(), inf, cel, *memWarn, *interval)
		} else {
			fmt.Fprintln(e.stdout, monitorLine(e.now(), inf, cel, *memWarn))
		}
		if *count > 0 && tick >= *count {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// sample reads INFO and the Celery queue lengths.
func sample(ctx context.Context, c *redis.Client, queues []string) (info, celeryState, error) {
	inf, err := fetchInfo(ctx, c)
	if err != nil {
		return nil, celeryState{}, err
	}
	cel, err := fetchCelery(ctx, c, queues)
	return inf, cel, err
}

// memoryStatus returns "ok", "WARN" (>= 80% of the threshold) or "CRIT"
// (>= threshold), and "unlimited" when maxmemory is 0.
func memoryStatus(inf info, memWarn float64) string {
	pct, ok := inf.memoryPercent()
	switch {
	case !ok:
		return "unlimited"
	case pct >= memWarn:
		return "CRIT"
	case pct >= memWarn*0.8:
		return "WARN"
	}
	return "ok"
}

// monitorLine is the plain one-line-per-tick form.
func monitorLine(now time.Time, inf info, cel celeryState, memWarn float64) string {
	pct, _ := inf.memoryPercent()
	return fmt.Sprintf("%s mem=%s/%s (%.1f%% %s) clients=%d ops/s=%d keys=%d evicted=%d rejected=%d rdb=%s aof=%s up=%s queues[%s] unacked=%d",
		now.Format(time.RFC3339), humanBytes(inf.int("used_memory")), humanBytes(inf.int("maxmemory")), pct,
		memoryStatus(inf, memWarn), inf.int("connected_clients"), inf.int("instantaneous_ops_per_sec"),
		inf.totalKeys(), inf.int("evicted_keys"), inf.int("rejected_connections"),
		inf["rdb_last_bgsave_status"], aofStatus(inf), humanDuration(inf.int("uptime_in_seconds")),
		cel.formatQueues(), cel.Unacked)
}

func aofStatus(inf info) string {
	if inf["aof_enabled"] != "1" {
		return "off"
	}
	s := inf["aof_last_write_status"]
	if inf["aof_rewrite_in_progress"] == "1" {
		s += ",rewriting"
	}
	return s
}

// drawDashboard clears the terminal and draws the dashboard.
func drawDashboard(w io.Writer, now time.Time, inf info, cel celeryState, memWarn float64, interval time.Duration) {
	pct, _ := inf.memoryPercent()
	var b strings.Builder
	b.WriteString("\033[H\033[2J")
	fmt.Fprintf(&b, "redis-ops monitor  %s  (every %v, Ctrl-C to quit)\n\n", now.Format("2006-01-02 15:04:05"), interval)
	fmt.Fprintf(&b, "Server     redis %s  up %s  role %s\n", inf["redis_version"], humanDuration(inf.int("uptime_in_seconds")), inf["role"])
	fmt.Fprintf(&b, "Memory     %s / %s  %s %.1f%%  [%s]  peak %s  policy %s\n", humanBytes(inf.int("used_memory")),
		humanBytes(inf.int("maxmemory")), bar(pct, 30), pct, memoryStatus(inf, memWarn), humanBytes(inf.int("used_memory_peak")), inf["maxmemory_policy"])
	fmt.Fprintf(&b, "Clients    %d connected, %d blocked, %d rejected connections\n", inf.int("connected_clients"), inf.int("blocked_clients"), inf.int("rejected_connections"))
	fmt.Fprintf(&b, "Traffic    %d ops/s, %d commands total, hit rate %s\n", inf.int("instantaneous_ops_per_sec"), inf.int("total_commands_processed"), hitRate(inf))
	fmt.Fprintf(&b, "Keys       %d  (evicted %d, expired %d)\n", inf.totalKeys(), inf.int("evicted_keys"), inf.int("expired_keys"))
	fmt.Fprintf(&b, "RDB        last bgsave %s, %d changes since last save\n", inf["rdb_last_bgsave_status"], inf.int("rdb_changes_since_last_save"))
	fmt.Fprintf(&b, "AOF        %s\n", aofStatus(inf))
	fmt.Fprintf(&b, "Celery     %s  unacked %d\n", cel.formatQueues(), cel.Unacked)
	_, _ = io.WriteString(w, b.String())
}

// bar renders pct (0-100) as a text bar of width cells.
func bar(pct float64, width int) string {
	n := int(pct / 100 * float64(width))
	n = max(0, min(width, n))
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func hitRate(inf info) string {
	hits, misses := inf.int("keyspace_hits"), inf.int("keyspace_misses")
	if hits+misses == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", float64(hits)*100/float64(hits+misses))
}
