package redistransport

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/internal/cmdlog"
)

// fetchCalls names the consumer's fetch calls as they go to Redis: "pop"
// for the pop script, "brpop"; everything else (connection setup, the
// sweep, the test's own pushes, the record script, which runs after the
// hand-out) is left out.
func fetchCalls(c redis.Cmder) string {
	switch c.Name() {
	case "brpop":
		return "brpop"
	case "evalsha", "eval":
		if sha, _ := c.Args()[1].(string); sha == popScript.Hash() {
			return "pop"
		}
	}
	return ""
}

// TestQuietQueueWaitsWithBRPOP: after a message a BRPOP had to wait for,
// the next fetch waits with BRPOP at once (as kombu's consumer does)
// instead of first running a pop script on queues that are most likely
// still empty; once a BRPOP finds a message without waiting, fetches go
// back to popping batches with the script.
func TestQuietQueueWaitsWithBRPOP(t *testing.T) {
	q := "quiet"
	tr := queueWith(t, q, "qt", 0)
	log := &cmdlog.Log{Name: fetchCalls}
	tr.client.AddHook(log)
	c := consumeT(t, tr, q)
	// Waits of 50 ms count as waiting, a loaded machine's round trip does
	// not.
	c.waitedAfter = 25 * time.Millisecond
	ctx := ctxT(t)

	fetchAfterPush := func(tag string) {
		t.Helper()
		got := make(chan []*Delivery, 1)
		go func() {
			ds, err := c.Fetch(ctx, 4)
			if err != nil {
				t.Error(err)
			}
			got <- ds
		}()
		time.Sleep(50 * time.Millisecond) // the fetch is waiting by now
		pushTagged(t, tr, q, tag, 1)
		ds := <-got
		if len(ds) != 1 || ds[0].Tag != tag+"-0000" {
			t.Fatalf("fetched %v, want the one message %s-0000", ds, tag)
		}
	}

	// An empty queue: the pop script finds nothing, then BRPOP waits.
	fetchAfterPush("a")
	if got := log.Take(); got != "pop brpop" {
		t.Fatalf("first fetch: calls %q, want the pop script, then brpop", got)
	}
	// The message was waited for: the next fetch goes straight to BRPOP.
	fetchAfterPush("b")
	if got := log.Take(); got != "brpop" {
		t.Fatalf("fetch after a waited-for message: calls %q, want brpop and no pop script", got)
	}

	// A backlog: BRPOP returns at once, and the fetch after it pops a
	// batch with the script.
	pushTagged(t, tr, q, "c", 9)
	fetchN(t, c, 1)
	if got := log.Take(); got != "brpop" {
		t.Fatalf("first fetch of the backlog: calls %q, want brpop", got)
	}
	ds := fetchN(t, c, 4)
	if got := log.Take(); got != "pop" {
		t.Fatalf("second fetch of the backlog: calls %q, want the pop script", got)
	}
	for i, d := range ds {
		if want := "c-000" + string(rune('1'+i)); d.Tag != want {
			t.Errorf("delivery %d: tag %s, want %s", i, d.Tag, want)
		}
	}
	waitFor(t, func() bool { h, _ := unackedCounts(t, tr); return h == 7 })
}
