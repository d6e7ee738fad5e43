package ops

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
)

// analyzeOptions configures an analysis.
type analyzeOptions struct {
	// batch is the SCAN COUNT hint and pipeline size. Defaults to 1000.
	batch int64
	// top is how many of the largest keys to keep. Defaults to 20.
	top int
	// match is the SCAN MATCH pattern. Defaults to "*".
	match string
	// samples is the MEMORY USAGE SAMPLES value. Defaults to 5 (Redis' default).
	samples int
	// queues are Celery queues to report besides those found in bindings.
	queues []string
}

// typeStat is the count and memory of the keys of one type.
type typeStat struct {
	Keys  int64 `json:"keys"`
	Bytes int64 `json:"bytes"`
}

// keySize is one key with its type, memory and TTL in milliseconds (-1 none).
type keySize struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Bytes int64  `json:"bytes"`
	TTLms int64  `json:"ttl_ms"`
}

// analysis is the result of analyze.
type analysis struct {
	Scanned        int64                `json:"scanned"`
	ByType         map[string]*typeStat `json:"by_type"`
	TotalBytes     int64                `json:"total_bytes"`
	WithTTL        int64                `json:"with_ttl"`
	WithoutTTL     int64                `json:"without_ttl"`
	Largest        []keySize            `json:"largest"`
	CeleryResults  int64                `json:"celery_results"`
	Celery         celeryState          `json:"celery"`
	EvictedKeys    int64                `json:"evicted_keys"`
	ExpiredKeys    int64                `json:"expired_keys"`
	MaxMemory      int64                `json:"maxmemory"`
	UsedMemory     int64                `json:"used_memory"`
	Policy         string               `json:"maxmemory_policy"`
	DurationMillis int64                `json:"duration_ms"`
}

// runAnalyze scans the keyspace and reports keys and memory by type.
func runAnalyze(ctx context.Context, e *env, args []string) error {
	fs := e.newFlagSet("analyze", "[flags]", `
Scans the keyspace with SCAN (never KEYS) and, per batch, one pipeline of
TYPE, MEMORY USAGE and PTTL. Reports keys and memory by type, the --top
largest keys (kept in a bounded heap, so memory does not grow with the number
of keys), keys with and without a TTL, Celery results, queue lengths and
eviction statistics. Progress goes to stderr on a terminal or with --progress.`)
	c := e.addConnFlags(fs)
	o := analyzeOptions{}
	fs.Int64Var(&o.batch, "batch", 1000, "SCAN COUNT and pipeline size")
	fs.IntVar(&o.top, "top", 20, "number of largest keys to show")
	fs.StringVar(&o.match, "match", "*", "SCAN MATCH pattern")
	fs.IntVar(&o.samples, "samples", 5, "MEMORY USAGE SAMPLES for aggregate types (0 = exact, slow)")
	queues := fs.String("queues", "celery", "comma-separated Celery queues to report")
	showProgress := fs.Bool("progress", false, "show progress on stderr even when it is not a terminal")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	c.markSet(fs)
	o.queues = strings.Split(*queues, ",")
	client, err := c.connect(ctx, e)
	if err != nil {
		return err
	}
	defer client.Close()
	total, err := client.DBSize(ctx).Result()
	if err != nil {
		return fmt.Errorf("DBSIZE: %w", err)
	}
	p := newProgress(*showProgress || e.isTerminal(e.stderr), e.stderr, "scanning", total)
	a, err := analyze(ctx, client, o, p)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(a)
	}
	return printAnalysis(e.stdout, a)
}

// analyze scans the keyspace; p may be nil.
func analyze(ctx context.Context, c *redis.Client, o analyzeOptions, p *progress) (*analysis, error) {
	start := time.Now()
	a := &analysis{ByType: map[string]*typeStat{}}
	top := &sizeHeap{}
	var bindings []string
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, o.match, o.batch).Result()
		if err != nil {
			return nil, fmt.Errorf("SCAN: %w", err)
		}
		batch, err := describeKeys(ctx, c, keys, o.samples)
		if err != nil {
			return nil, err
		}
		for _, k := range batch {
			a.add(k, top, o.top)
			if strings.HasPrefix(k.Key, "_kombu.binding.") {
				bindings = append(bindings, k.Key)
			}
		}
		p.set(a.Scanned)
		if cursor = next; cursor == 0 {
			break
		}
	}
	p.finish(a.Scanned)
	a.Largest = top.sorted()
	if err := a.addServerState(ctx, c, bindings, o.queues); err != nil {
		return nil, err
	}
	a.DurationMillis = time.Since(start).Milliseconds()
	return a, nil
}

// describeKeys pipelines TYPE, MEMORY USAGE and PTTL for keys. Keys deleted
// between SCAN and the pipeline are left out.
func describeKeys(ctx context.Context, c *redis.Client, keys []string, samples int) ([]keySize, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	pipe := c.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	mems := make([]*redis.IntCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		types[i] = pipe.Type(ctx, k)
		mems[i] = pipe.MemoryUsage(ctx, k, samples)
		ttls[i] = pipe.PTTL(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("pipeline TYPE/MEMORY USAGE/PTTL: %w", err)
	}
	out := make([]keySize, 0, len(keys))
	for i, k := range keys {
		t := types[i].Val()
		if t == "none" || t == "" {
			continue
		}
		ttl := int64(-1)
		if d := ttls[i].Val(); d > 0 {
			ttl = d.Milliseconds()
		}
		out = append(out, keySize{Key: k, Type: t, Bytes: mems[i].Val(), TTLms: ttl})
	}
	return out, nil
}

// add counts one key and offers it to the top-N heap.
func (a *analysis) add(k keySize, top *sizeHeap, n int) {
	a.Scanned++
	st := a.ByType[k.Type]
	if st == nil {
		st = &typeStat{}
		a.ByType[k.Type] = st
	}
	st.Keys++
	st.Bytes += k.Bytes
	a.TotalBytes += k.Bytes
	if k.TTLms >= 0 {
		a.WithTTL++
	} else {
		a.WithoutTTL++
	}
	if strings.HasPrefix(k.Key, "celery-task-meta-") {
		a.CeleryResults++
	}
	top.offer(k, n)
}

// addServerState adds eviction statistics and Celery queue lengths.
func (a *analysis) addServerState(ctx context.Context, c *redis.Client, bindings, queues []string) error {
	inf, err := fetchInfo(ctx, c, "memory", "stats")
	if err != nil {
		return err
	}
	a.EvictedKeys, a.ExpiredKeys = inf.int("evicted_keys"), inf.int("expired_keys")
	a.MaxMemory, a.UsedMemory, a.Policy = inf.int("maxmemory"), inf.int("used_memory"), inf["maxmemory_policy"]
	names := map[string]bool{}
	for _, q := range queues {
		if q != "" {
			names[q] = true
		}
	}
	for _, b := range bindings {
		members, err := c.SMembers(ctx, b).Result()
		if err != nil && !isWrongType(err) {
			return fmt.Errorf("SMEMBERS %s: %w", b, err)
		}
		for _, q := range queueNamesFromBindings(members) {
			names[q] = true
		}
	}
	list := make([]string, 0, len(names))
	for q := range names {
		list = append(list, q)
	}
	sort.Strings(list)
	a.Celery, err = fetchCelery(ctx, c, list)
	return err
}

// sizeHeap is a min-heap of keys by memory, holding at most N entries.
type sizeHeap []keySize

func (h sizeHeap) Len() int           { return len(h) }
func (h sizeHeap) Less(i, j int) bool { return h[i].Bytes < h[j].Bytes }
func (h sizeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *sizeHeap) Push(x any)        { *h = append(*h, x.(keySize)) }
func (h *sizeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// offer keeps k when it is among the n largest seen so far.
func (h *sizeHeap) offer(k keySize, n int) {
	switch {
	case n <= 0:
	case h.Len() < n:
		heap.Push(h, k)
	case k.Bytes > (*h)[0].Bytes:
		(*h)[0] = k
		heap.Fix(h, 0)
	}
}

// sorted returns the kept keys, largest first.
func (h *sizeHeap) sorted() []keySize {
	out := append([]keySize(nil), *h...)
	sort.Slice(out, func(i, j int) bool { return out[i].Bytes > out[j].Bytes })
	return out
}

// printAnalysis writes the human-readable report.
func printAnalysis(w io.Writer, a *analysis) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Scanned %d keys in %dms; %d with TTL, %d without; %d Celery results\n\n", a.Scanned, a.DurationMillis, a.WithTTL, a.WithoutTTL, a.CeleryResults)
	fmt.Fprintln(tw, "TYPE\tKEYS\tMEMORY\tSHARE")
	types := make([]string, 0, len(a.ByType))
	for t := range a.ByType {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return a.ByType[types[i]].Bytes > a.ByType[types[j]].Bytes })
	for _, t := range types {
		st := a.ByType[t]
		share := 0.0
		if a.TotalBytes > 0 {
			share = float64(st.Bytes) * 100 / float64(a.TotalBytes)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f%%\n", t, st.Keys, humanBytes(st.Bytes), share)
	}
	fmt.Fprintf(tw, "\nLARGEST KEYS\tTYPE\tMEMORY\tTTL\n")
	for _, k := range a.Largest {
		ttl := "none"
		if k.TTLms >= 0 {
			ttl = (time.Duration(k.TTLms) * time.Millisecond).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", formatArgs([]string{k.Key}), k.Type, humanBytes(k.Bytes), ttl)
	}
	fmt.Fprintf(tw, "\nEvictions: %d evicted, %d expired; policy %s; used %s of maxmemory %s\n",
		a.EvictedKeys, a.ExpiredKeys, a.Policy, humanBytes(a.UsedMemory), humanBytes(a.MaxMemory))
	fmt.Fprintf(tw, "Celery queues: %s; unacked %d\n", a.Celery.formatQueues(), a.Celery.Unacked)
	return tw.Flush()
}
