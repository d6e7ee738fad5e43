package ops

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// runSlowlog prints the newest --count slow log entries.
func runSlowlog(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("slowlog", "[flags]", `
Prints the newest slow log entries (SLOWLOG GET): id, time, duration, client
and the command (long arguments shortened).`)
	c := e.addConnFlags(fs)
	count := fs.Int64("count", 10, "number of entries")
	if err := parse(fs, args); err != nil {
		return err
	}
	c.markSet(fs)
	client, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer client.Close()
	entries, err := client.SlowLogGet(ctx, *count).Result()
	if err != nil {
		return fmt.Errorf("SLOWLOG GET: %w", err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tDURATION\tCLIENT\tCOMMAND")
	for _, s := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%v\t%s\t%s\n", s.ID, s.Time.Format(time.RFC3339), s.Duration, s.ClientAddr, formatArgs(s.Args))
	}
	if len(entries) == 0 {
		fmt.Fprintln(tw, "-\t-\t-\t-\t(slow log is empty)")
	}
	return tw.Flush()
}

// formatArgs joins command arguments, shortening long ones.
func formatArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if len(a) > 40 {
			a = a[:37] + "..."
		}
		out[i] = a
		if q := strconv.Quote(a); a == "" || strings.ContainsAny(a, " \"") || q != `"`+a+`"` {
			out[i] = q
		}
	}
	return strings.Join(out, " ")
}

// commandStat is one line of INFO commandstats.
type commandStat struct {
	Name        string
	Calls       int64
	Usec        int64
	UsecPerCall float64
	Rejected    int64
	Failed      int64
}

// parseCommandStats parses INFO commandstats, sorted by calls (most first).
func parseCommandStats(inf info) []commandStat {
	var stats []commandStat
	for k, v := range inf {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		s := commandStat{Name: name}
		for _, kv := range strings.Split(v, ",") {
			key, val, _ := strings.Cut(kv, "=")
			switch key {
			case "calls":
				s.Calls, _ = strconv.ParseInt(val, 10, 64)
			case "usec":
				s.Usec, _ = strconv.ParseInt(val, 10, 64)
			case "usec_per_call":
				s.UsecPerCall, _ = strconv.ParseFloat(val, 64)
			case "rejected_calls":
				s.Rejected, _ = strconv.ParseInt(val, 10, 64)
			case "failed_calls":
				s.Failed, _ = strconv.ParseInt(val, 10, 64)
			}
		}
		stats = append(stats, s)
	}
	sort.Slice(stats, func(i, j int) bool {
		if stats[i].Calls != stats[j].Calls {
			return stats[i].Calls > stats[j].Calls
		}
		return stats[i].Name < stats[j].Name
	})
	return stats
}

// runStats prints INFO commandstats, most used first.
func runStats(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("stats", "[flags]", `
Prints command statistics (INFO commandstats) sorted by number of calls, most
used first, with total and per-call time and rejected/failed calls.`)
	c := e.addConnFlags(fs)
	top := fs.Int("top", 0, "show only the N most used commands (0 = all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	c.markSet(fs)
	client, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer client.Close()
	inf, err := fetchInfo(ctx, client, "commandstats")
	if err != nil {
		return err
	}
	stats := parseCommandStats(inf)
	if *top > 0 && len(stats) > *top {
		stats = stats[:*top]
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMMAND\tCALLS\tUSEC\tUSEC_PER_CALL\tREJECTED\tFAILED")
	for _, s := range stats {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%d\t%d\n", s.Name, s.Calls, s.Usec, s.UsecPerCall, s.Rejected, s.Failed)
	}
	return tw.Flush()
}
