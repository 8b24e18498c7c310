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

// TestQuietQueueWaitsWithBRPOP: after a message BRPOP delivered and
// left every queue empty (EXISTS pipelined after it), the next fetch
// waits with BRPOP at once (as kombu's consumer does) instead of first
// running a pop script on queues that are most likely still empty; once
// BRPOP leaves messages behind, fetches go back to popping batches with
// the script. With a client whose read timeout would cut a pipelined
// BRPOP short, BRPOP goes alone and fetches always try the script first.
func TestQuietQueueWaitsWithBRPOP(t *testing.T) {
	for _, exists := range []bool{true, false} {
		name := map[bool]string{true: "exists", false: "short read timeout"}[exists]
		t.Run(name, func(t *testing.T) { quietQueue(t, exists) })
	}
}

func quietQueue(t *testing.T, exists bool) {
	q := "quiet"
	tr := queueWith(t, q, "qt", 0)
	log := &cmdlog.Log{Name: fetchCalls}
	tr.client.AddHook(log)
	c := consumeT(t, tr, q)
	if !c.brpopExists {
		t.Fatal("a client with go-redis's default read timeout does not pipeline EXISTS")
	}
	c.brpopExists = exists
	ctx := ctxT(t)
	want := func(what, got, withExists, without string) {
		t.Helper()
		w := without
		if exists {
			w = withExists
		}
		if got != w {
			t.Fatalf("%s: calls %q, want %q", what, got, w)
		}
	}

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
	want("first fetch", log.Take(), "pop brpop", "pop brpop")
	// BRPOP left the queue empty: the next fetch goes straight to BRPOP.
	fetchAfterPush("b")
	want("fetch after BRPOP emptied the queue", log.Take(), "brpop", "pop brpop")

	// A backlog: BRPOP leaves messages behind, and the fetch after it
	// pops a batch with the script.
	pushTagged(t, tr, q, "c", 9)
	fetchN(t, c, 1)
	want("first fetch of the backlog", log.Take(), "brpop", "pop")
	ds := fetchN(t, c, 4)
	want("second fetch of the backlog", log.Take(), "pop", "pop")
	for i, d := range ds {
		if want := "c-000" + string(rune('1'+i)); d.Tag != want {
			t.Errorf("delivery %d: tag %s, want %s", i, d.Tag, want)
		}
	}
	waitFor(t, func() bool { h, _ := unackedCounts(t, tr); return h == 7 })
}
