package ops

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// info is a parsed INFO reply: field name -> value.
type info map[string]string

// fetchInfo runs INFO with the given sections and parses the reply.
func fetchInfo(ctx context.Context, c *redis.Client, sections ...string) (info, error) {
	s, err := c.Info(ctx, sections...).Result()
	if err != nil {
		return nil, fmt.Errorf("INFO: %w", err)
	}
	return parseInfo(s), nil
}

func parseInfo(s string) info {
	m := info{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// int returns the field as an integer (0 when missing or not a number).
func (i info) int(key string) int64 {
	n, _ := strconv.ParseInt(i[key], 10, 64)
	return n
}

// float returns the field as a float (0 when missing or not a number).
func (i info) float(key string) float64 {
	f, _ := strconv.ParseFloat(i[key], 64)
	return f
}

// keyspace returns the number of keys per database ("db0" -> keys).
func (i info) keyspace() map[string]int64 { return i.keyspaceField("keys") }

// keyspaceField returns one field of INFO keyspace ("keys", "expires") per database.
func (i info) keyspaceField(field string) map[string]int64 {
	m := map[string]int64{}
	for k, v := range i {
		if !strings.HasPrefix(k, "db") {
			continue
		}
		if _, err := strconv.Atoi(k[2:]); err != nil {
			continue
		}
		for _, part := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(part, field+"="); ok {
				m[k], _ = strconv.ParseInt(n, 10, 64)
			}
		}
	}
	return m
}

// totalKeys sums keys over all databases.
func (i info) totalKeys() int64 { return sum(i.keyspace()) }

// totalExpires sums the keys with a TTL over all databases.
func (i info) totalExpires() int64 { return sum(i.keyspaceField("expires")) }

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// memoryPercent returns used_memory as a percentage of maxmemory, and false
// when maxmemory is 0 (unlimited).
func (i info) memoryPercent() (float64, bool) {
	max := i.int("maxmemory")
	if max <= 0 {
		return 0, false
	}
	return float64(i.int("used_memory")) * 100 / float64(max), true
}

// persistenceProblem returns a description of a failing RDB save or AOF
// write, or "" when persistence is healthy.
func (i info) persistenceProblem() string {
	var p []string
	if i["rdb_last_bgsave_status"] == "err" {
		p = append(p, "rdb_last_bgsave_status:err")
	}
	if i["aof_enabled"] == "1" && i["aof_last_write_status"] == "err" {
		p = append(p, "aof_last_write_status:err")
	}
	if i["aof_enabled"] == "1" && i["aof_last_bgrewrite_status"] == "err" {
		p = append(p, "aof_last_bgrewrite_status:err")
	}
	return strings.Join(p, " ")
}

// humanBytes formats n bytes as B, K, M, G (binary units, like Redis).
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	f, suffix := float64(n), "B"
	for _, s := range []string{"K", "M", "G", "T"} {
		if f < unit {
			break
		}
		f, suffix = f/unit, s
	}
	return fmt.Sprintf("%.1f%s", f, suffix)
}

// humanDuration formats seconds as e.g. 3d4h, 2h5m, 4m10s.
func humanDuration(secs int64) string {
	d := time.Duration(secs) * time.Second
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, (d%time.Hour)/time.Minute)
	}
	return d.String()
}

// kombuSep separates the fields of a kombu binding and priority queue names.
const kombuSep = "\x06\x16"

// kombuPriorities are the priority steps kombu's Redis transport uses; a
// queue Q with priorities is stored as Q, Q\x06\x163, Q\x06\x166, Q\x06\x169.
var kombuPriorities = []string{"", kombuSep + "3", kombuSep + "6", kombuSep + "9"}

// queueNamesFromBindings returns the queue names in a _kombu.binding.* set's
// members ("routing_key\x06\x16pattern\x06\x16queue").
func queueNamesFromBindings(members []string) []string {
	var names []string
	for _, m := range members {
		parts := strings.Split(m, kombuSep)
		if q := parts[len(parts)-1]; q != "" {
			names = append(names, q)
		}
	}
	return names
}

// discoverQueues returns the configured queues plus the queues named in the
// _kombu.binding.* sets (found with SCAN MATCH, never KEYS), sorted.
func discoverQueues(ctx context.Context, c *redis.Client, configured []string) ([]string, error) {
	seen := map[string]bool{}
	for _, q := range configured {
		if q != "" {
			seen[q] = true
		}
	}
	iter := c.Scan(ctx, 0, "_kombu.binding.*", 1000).Iterator()
	for iter.Next(ctx) {
		members, err := c.SMembers(ctx, iter.Val()).Result()
		if err != nil {
			return nil, fmt.Errorf("SMEMBERS %s: %w", iter.Val(), err)
		}
		for _, q := range queueNamesFromBindings(members) {
			seen[q] = true
		}
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("SCAN _kombu.binding.*: %w", err)
	}
	names := make([]string, 0, len(seen))
	for q := range seen {
		names = append(names, q)
	}
	sort.Strings(names)
	return names, nil
}

// celeryState holds Celery queue lengths and the unacked counts.
type celeryState struct {
	Queues       map[string]int64 `json:"queues"`
	Unacked      int64            `json:"unacked"`
	UnackedIndex int64            `json:"unacked_index"`
}

// fetchCelery reads the length of each queue (summing kombu priority
// sub-queues) and the unacked hash and index, in one pipeline.
func fetchCelery(ctx context.Context, c *redis.Client, queues []string) (celeryState, error) {
	st := celeryState{Queues: map[string]int64{}}
	pipe := c.Pipeline()
	lens := make([][]*redis.IntCmd, len(queues))
	for i, q := range queues {
		for _, p := range kombuPriorities {
			lens[i] = append(lens[i], pipe.LLen(ctx, q+p))
		}
	}
	unacked := pipe.HLen(ctx, "unacked")
	index := pipe.ZCard(ctx, "unacked_index")
	if _, err := pipe.Exec(ctx); err != nil && !isWrongType(err) {
		return st, fmt.Errorf("read Celery queues: %w", err)
	}
	for i, q := range queues {
		for _, cmd := range lens[i] {
			st.Queues[q] += cmd.Val()
		}
	}
	st.Unacked, st.UnackedIndex = unacked.Val(), index.Val()
	return st, nil
}

func isWrongType(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") }

// formatQueues renders "celery=3 other=0".
func (s celeryState) formatQueues() string {
	names := make([]string, 0, len(s.Queues))
	for q := range s.Queues {
		names = append(names, q)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, q := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", q, s.Queues[q]))
	}
	return strings.Join(parts, " ")
}
