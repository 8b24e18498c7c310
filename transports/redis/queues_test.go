package redistransport

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/celerity-go/celerity/transports"
)

// fetchNone checks that no delivery arrives within d.
func fetchNone(t *testing.T, c *Consumer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctxT(t), d)
	defer cancel()
	if ds, err := c.Fetch(ctx, 10); err == nil || len(ds) > 0 {
		t.Fatalf("fetched %d deliveries (%v), want none", len(ds), err)
	}
}

// AddQueue and CancelQueue change what a running consumer pops, down to
// no queue at all, where Fetch waits for the next AddQueue.
func TestAddCancelQueue(t *testing.T) {
	tr := queueWith(t, "qa", "a", 1)
	if err := tr.Declare(ctxT(t), transports.Queue{Name: "qb"}); err != nil {
		t.Fatal(err)
	}
	pushTagged(t, tr, "qb", "b", 1)
	c := consumeT(t, tr, "qa")
	if ds := fetchN(t, c, 1); ds[0].Queue != "qa" {
		t.Fatalf("first delivery from %q", ds[0].Queue)
	} else if err := c.Ack(ctxT(t), ds[0]); err != nil {
		t.Fatal(err)
	}
	fetchNone(t, c, 1500*time.Millisecond) // qb is not consumed

	if err := c.AddQueue("qb"); err != nil {
		t.Fatal(err)
	}
	if err := c.AddQueue("qb"); err != nil { // a second add changes nothing
		t.Fatal(err)
	}
	if q := c.Queues(); !slices.Equal(q, []string{"qa", "qb"}) {
		t.Errorf("queues %v", q)
	}
	ds := fetchN(t, c, 1)
	if ds[0].Queue != "qb" {
		t.Errorf("delivery from %q, want qb", ds[0].Queue)
	}
	if err := c.Ack(ctxT(t), ds[0]); err != nil {
		t.Fatal(err)
	}

	// A Fetch waits in BRPOP on both queues; both are cancelled, then a
	// message comes to qa. The BRPOP pops it, and it goes back to qa, as
	// kombu requeues a message for a queue it no longer consumes.
	brpops := c.brpops.Load()
	fetched := make(chan []*transports.Delivery, 1)
	go func() {
		ds, _ := c.Fetch(ctxT(t), 10)
		fetched <- ds
	}()
	waitFor(t, func() bool { return c.brpops.Load() > brpops })
	for _, q := range []string{"qa", "qb", "qb"} {
		if err := c.CancelQueue(q); err != nil {
			t.Fatal(err)
		}
	}
	if q := c.Queues(); len(q) != 0 {
		t.Errorf("queues after cancelling both: %v", q)
	}
	pushTagged(t, tr, "qa", "a2", 1)
	select {
	case ds := <-fetched:
		t.Fatalf("a consumer with no queue fetched %d deliveries", len(ds))
	case <-time.After(2500 * time.Millisecond): // beyond PollTimeout
	}
	if n, err := tr.client.LLen(ctxT(t), tr.ks.prefix+"qa").Result(); err != nil || n != 1 {
		t.Fatalf("qa holds %d messages (%v), want a2", n, err)
	}
	if err := c.AddQueue("qa"); err != nil {
		t.Fatal(err)
	}
	select {
	case ds := <-fetched:
		if len(ds) != 1 || ds[0].Queue != "qa" {
			t.Fatalf("after AddQueue: %d deliveries", len(ds))
		}
		if err := c.Ack(ctxT(t), ds...); err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting Fetch did not pop from the added queue")
	}
}
