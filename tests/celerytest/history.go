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
	LongestGap                        time.Duration     // longest stretch without an acknowledged enqueue
	Refusals                          map[string]int    // by error class
	RefusalExamples                   map[string]string // the first refusal's message, by error class
	LostIDs, DuplicateIDs             []string
	// Republished are the acknowledged tasks whose enqueue took at least PublishTimeout: its first
	// attempt timed out and Celery's publish retry sent it again, which runs it twice when the first
	// copy reached a primary after all (at least once, by design; docs/OPERATIONS.md).
	Republished map[string]bool
}

// PublishTimeout is emailclient_broker's socket timeout (SOCKET_TIMEOUT): an enqueue that took at least
// this long had its first attempt time out.
const PublishTimeout = 5 * time.Second

var (
	succeededRe = regexp.MustCompile(`send_email\[([^\]]+)\] succeeded`)
	receivedRe  = regexp.MustCompile(`Received task: [\w.]+\[([^\]]+)\]`)
	putBackRe   = regexp.MustCompile(`kombu#305: task (\S+) put back`)
)

// PutBackIDs counts, by id, the tasks worker logs say emailclient_broker put back on their queue after
// their unacknowledged record failed (kombu#305): a redelivery by design, which runs a task twice when
// the worker's pop never reached the primary that took over.
func PutBackIDs(logs ...string) map[string]int { return countIDs(putBackRe, logs) }

// Unexplained are the duplicates of h that neither a put-back (PutBackIDs) nor a republished enqueue
// (Republished) explains.
func (h History) Unexplained(putBack map[string]int) []string {
	var out []string
	for _, id := range h.DuplicateIDs {
		if putBack[id] == 0 && !h.Republished[id] {
			out = append(out, id)
		}
	}
	return out
}

// RanByID counts the tasks worker logs say succeeded, by id.
func RanByID(logs ...string) map[string]int { return countIDs(succeededRe, logs) }

// ReceivedByID counts the tasks worker logs say were received (taken from Redis), by id.
func ReceivedByID(logs ...string) map[string]int { return countIDs(receivedRe, logs) }

// countIDs counts the task ids (re's first group) in logs.
func countIDs(re *regexp.Regexp, logs []string) map[string]int {
	n := map[string]int{}
	for _, log := range logs {
		for _, m := range re.FindAllStringSubmatch(log, -1) {
			n[m[1]]++
		}
	}
	return n
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
	h := History{Prefix: prefix, Sent: len(outcomes), Refusals: map[string]int{}, RefusalExamples: map[string]string{}, Republished: map[string]bool{}}
	for _, o := range outcomes {
		id := fmt.Sprintf("%s-%d", prefix, o.I)
		if ran[id] > 1 {
			h.Duplicates++
			h.DuplicateIDs = append(h.DuplicateIDs, id)
		}
		if o.Error != "" {
			h.Refused++
			class, _, _ := strings.Cut(o.Error, ":")
			h.Refusals[class]++
			if _, seen := h.RefusalExamples[class]; !seen {
				h.RefusalExamples[class] = o.Error
			}
			if ran[id] > 0 || queued[id] {
				h.RefusedRan++
			}
			continue
		}
		h.Acknowledged++
		if time.Duration(o.Duration*float64(time.Second)) >= PublishTimeout {
			h.Republished[id] = true
		}
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
