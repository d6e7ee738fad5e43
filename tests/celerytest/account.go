package celerytest

import (
	"fmt"
	"strings"
	"testing"
)

// Account is what became of tasks enqueued before a fault (every enqueue acknowledged) that a client
// then collected: each task without a successful result is put down to one cause, from the client's
// collect (Result.PendingIDs, FailedIDs), the workers' logs (RanByID) and what the primary holds after
// the fault (the client's queue mode: the queue and the unacknowledged hash).
//
// Not lost, by design: StillQueued (waits for a worker), AwaitingRedelivery (taken by a worker that
// lost its connection before acknowledging it; Redis hands it out again after the broker's visibility
// timeout or when a worker restores it at shutdown) and Failed (the task ran and raised).
//
// Lost: ResultLost (a worker ran it, its result is not on the primary: written to the old primary and
// discarded when that one rejoined as a replica), Dropped (a worker logged it received and never ran
// it, and it is neither queued nor unacknowledged) and Gone (no worker ever saw it and it is neither
// queued nor unacknowledged: the worker's pop took it off the queue, but its reply or the worker's
// record in the unacknowledged hash died with the old primary; or the enqueue reached only the old
// primary).
type Account struct {
	Total, Completed, Failed        int
	StillQueued, AwaitingRedelivery int
	ResultLost, Dropped, Gone       int
	// IDs are the tasks of each cause but Completed, by cause name (the field's name).
	IDs map[string][]string
}

// NewAccount puts down every task of ids that did not complete to one cause.
// collected is the client's collect of ids, state its queue mode afterwards, logs the workers' logs
// (RanByID, ReceivedByID).
func NewAccount(ids []string, collected, state Result, logs ...string) Account {
	a := Account{Total: len(ids), IDs: map[string][]string{}}
	pending := setOf(collected.PendingIDs)
	failed := setOf(collected.FailedIDs)
	inQueue, inUnacked := QueuedIDs(state.Queue, nil), QueuedIDs(nil, state.Unacked)
	ran, received := RanByID(logs...), ReceivedByID(logs...)
	add := func(n *int, cause, id string) { *n++; a.IDs[cause] = append(a.IDs[cause], id) }
	for _, id := range ids {
		switch {
		case failed[id]:
			add(&a.Failed, "Failed", id)
		case !pending[id]:
			a.Completed++
		case inQueue[id]:
			add(&a.StillQueued, "StillQueued", id)
		case inUnacked[id]:
			add(&a.AwaitingRedelivery, "AwaitingRedelivery", id)
		case ran[id] > 0:
			add(&a.ResultLost, "ResultLost", id)
		case received[id] > 0:
			add(&a.Dropped, "Dropped", id)
		default:
			add(&a.Gone, "Gone", id)
		}
	}
	return a
}

// Lost are the tasks whose enqueue was acknowledged and that will never have a result.
func (a Account) Lost() int { return a.ResultLost + a.Dropped + a.Gone }

// AssertCrashLoss fails the test unless the only tasks lost after the primary was killed (SIGKILL, no
// graceful shutdown) are gone unseen, at most one per worker consumer connection (consumers).
//
// The cause, the one loss a crash of the primary explains: kombu's Redis transport takes a message
// off the queue with BRPOP and records it in the unacknowledged hash in a second round trip
// (ZADD+HSET; celery/kombu#305). emailclient_broker's workaround puts a message whose record failed
// back on its queue (before and after in RELIABILITY.md, "Failovers"), which leaves one window per
// consumer connection: the primary replicated the pop and died before the
// BRPOP's reply reached the worker. Nothing else may be lost: queued tasks were replicated before
// the kill, and results are stored on the new primary (the result backend retries).
func AssertCrashLoss(t testing.TB, a Account, consumers int) {
	t.Helper()
	if a.ResultLost+a.Dropped > 0 || a.Gone > consumers {
		t.Errorf("tasks lost after killing the primary beyond the one BRPOP in flight per consumer connection (%d): %s", consumers, a)
	}
}

// String is the FIGURE line's accounting: every cause, zero or not.
func (a Account) String() string {
	s := fmt.Sprintf("%d of %d completed, %d lost (%d ran but result lost, %d received but dropped, %d gone unseen), %d not lost (%d still queued, %d awaiting redelivery, %d failed)",
		a.Completed, a.Total, a.Lost(), a.ResultLost, a.Dropped, a.Gone,
		a.StillQueued+a.AwaitingRedelivery+a.Failed, a.StillQueued, a.AwaitingRedelivery, a.Failed)
	var ids []string
	for _, cause := range []string{"ResultLost", "Dropped", "Gone", "AwaitingRedelivery"} {
		if l := a.IDs[cause]; len(l) > 0 {
			ids = append(ids, cause+": "+strings.Join(l[:min(len(l), 5)], " "))
		}
	}
	if len(ids) > 0 {
		s += "; " + strings.Join(ids, "; ")
	}
	return s
}

func setOf(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
