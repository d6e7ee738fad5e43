package celerytest

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// History is what happened to one producer group's numbered tasks (ids <prefix>-<i>) in a fault test:
// acknowledged or refused by the producer's own record, then ran (a worker's log), still queued (the
// queue and the unacknowledged hash of the primary) or lost (acknowledged, and neither).
type History struct {
	Prefix                            string
	Sent, Acknowledged, Refused, Lost int
	RefusedRan, Duplicates, Queued    int
	LongestGap                        time.Duration  // longest stretch without an acknowledged enqueue
	Refusals                          map[string]int // by error class
	LostIDs                           []string
}

var (
	succeededRe = regexp.MustCompile(`send_email\[([^\]]+)\] succeeded`)
	receivedRe  = regexp.MustCompile(`Received task: [\w.]+\[([^\]]+)\]`)
)

// RanByID counts the tasks worker logs say succeeded, by id.
func RanByID(logs ...string) map[string]int {
	ran := map[string]int{}
	for _, log := range logs {
		for _, m := range succeededRe.FindAllStringSubmatch(log, -1) {
			ran[m[1]]++
		}
	}
	return ran
}

// ReceivedByID counts the tasks worker logs say were received (taken from Redis), by id.
func ReceivedByID(logs ...string) map[string]int {
	got := map[string]int{}
	for _, log := range logs {
		for _, m := range receivedRe.FindAllStringSubmatch(log, -1) {
			got[m[1]]++
		}
	}
	return got
}

// QueuedIDs are the task ids of messages of the celery queue (LRANGE) and of values of the
// unacknowledged hash (HVALS: [message, exchange, routing key]).
func QueuedIDs(queue, unacked []string) map[string]bool {
	ids := map[string]bool{}
	idOf := func(message string) string {
		var m struct {
			Headers struct {
				ID string `json:"id"`
			} `json:"headers"`
		}
		_ = json.Unmarshal([]byte(message), &m)
		return m.Headers.ID
	}
	for _, m := range queue {
		if id := idOf(m); id != "" {
			ids[id] = true
		}
	}
	for _, v := range unacked {
		var entry []json.RawMessage
		if json.Unmarshal([]byte(v), &entry) == nil && len(entry) > 0 {
			var message string
			if json.Unmarshal(entry[0], &message) != nil {
				message = string(entry[0])
			}
			if id := idOf(message); id != "" {
				ids[id] = true
			}
		}
	}
	return ids
}

// NewHistory accounts for the tasks of one producer group.
func NewHistory(prefix string, outcomes []Outcome, ran map[string]int, queued map[string]bool) History {
	h := History{Prefix: prefix, Sent: len(outcomes), Refusals: map[string]int{}}
	for _, o := range outcomes {
		id := fmt.Sprintf("%s-%d", prefix, o.I)
		if ran[id] > 1 {
			h.Duplicates++
		}
		if o.Error != "" {
			h.Refused++
			class, _, _ := strings.Cut(o.Error, ":")
			h.Refusals[class]++
			if ran[id] > 0 || queued[id] {
				h.RefusedRan++
			}
			continue
		}
		h.Acknowledged++
		switch {
		case ran[id] > 0:
		case queued[id]:
			h.Queued++
		default:
			h.Lost++
			h.LostIDs = append(h.LostIDs, id)
		}
	}
	h.LongestGap = LongestGap(outcomes, time.Time{}, time.Time{})
	return h
}

// LongestGap is the longest stretch without an acknowledged enqueue among outcomes, from the returns
// of acknowledged enqueues in time order; from and to, when set, bound the window (a stretch from
// from to the first acknowledgment, or from the last one to to, counts too).
func LongestGap(outcomes []Outcome, from, to time.Time) time.Duration {
	var acks []time.Time
	for _, o := range outcomes {
		if o.Error == "" {
			acks = append(acks, o.Returned())
		}
	}
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	if !from.IsZero() {
		acks = append([]time.Time{from}, acks...)
	}
	if !to.IsZero() {
		acks = append(acks, to)
	}
	var longest time.Duration
	for i := 1; i < len(acks); i++ {
		longest = max(longest, acks[i].Sub(acks[i-1]))
	}
	return longest
}

// Durations reads a comma-separated list of durations ("10s,15s,30s") from the environment variable
// name, for figure runs that choose their own lengths; def when it is unset. A bad entry fails the test.
func Durations(t testing.TB, name string, def []time.Duration) []time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []time.Duration
	for _, s := range strings.Split(v, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, d)
	}
	return out
}
