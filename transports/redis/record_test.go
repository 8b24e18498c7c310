package redistransport

import (
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/internal/cmdlog"
)

// unackedCalls names the commands that touch kombu's unacked entries.
func unackedCalls(c redis.Cmder) string {
	switch n := c.Name(); n {
	case "zadd", "hset", "zrem", "hdel":
		return n
	}
	return ""
}

// TestBRPOPRecordDeferred: a message BRPOP delivered is recorded in
// unacked only once recordDelay has passed. Acknowledged before that, it
// costs no record and no ack; kept longer, it is recorded with the time
// BRPOP returned it, as kombu records it; something that must see the
// record (a synchronous Ack) has it written at once.
func TestBRPOPRecordDeferred(t *testing.T) {
	const q = "recdefer"
	tr := queueWith(t, q, "rd", 0)
	log := &cmdlog.Log{Name: unackedCalls}
	tr.client.AddHook(log)
	c := consumeT(t, tr, q)
	ctx := ctxT(t)
	p := tr.ks.prefix

	// fetchOne waits in BRPOP, pushes one message and returns its
	// delivery with the time window in which BRPOP returned it.
	fetchOne := func(tag string) (d *Delivery, before, after time.Time) {
		t.Helper()
		got := make(chan []*Delivery, 1)
		n := c.brpops.Load()
		go func() {
			ds, err := c.Fetch(ctx, 1)
			if err != nil {
				t.Error(err)
			}
			got <- ds
		}()
		waitFor(t, func() bool { return c.brpops.Load() > n })
		before = time.Now()
		pushTagged(t, tr, q, tag, 1)
		ds := <-got
		after = time.Now()
		if len(ds) != 1 || ds[0].Tag != tag+"-0000" {
			t.Fatalf("fetched %v, want %s-0000", ds, tag)
		}
		if _, ok := ds[0].Token.(*recordState); !ok {
			t.Fatalf("BRPOP delivery has no record state (%T)", ds[0].Token)
		}
		return ds[0], before, after
	}
	empty := func(when string) {
		t.Helper()
		if h, i := unackedCounts(t, tr); h != 0 || i != 0 {
			t.Fatalf("%s: unacked %d / unacked_index %d entries, want none", when, h, i)
		}
	}

	// Acknowledged within the delay: nothing is written, nor removed.
	c.recordAfter = 300 * time.Millisecond
	d, _, _ := fetchOne("early")
	c.AckAsync(d)
	time.Sleep(c.recordAfter + 50*time.Millisecond + c.linger)
	empty("acked before the delay")
	if got := log.Take(); got != "" {
		t.Fatalf("acked before the delay: commands %q on unacked, want none", got)
	}

	// Kept past the delay: recorded, with BRPOP's time, then acked.
	d, before, after := fetchOne("kept")
	empty("within the delay")
	waitFor(t, func() bool { h, i := unackedCounts(t, tr); return h == 1 && i == 1 })
	score, err := tr.client.ZScore(ctx, p+"unacked_index", d.Tag).Result()
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := math.Ceil(float64(before.UnixNano())/1e9), math.Ceil(float64(after.UnixNano())/1e9)
	if score < lo || score > hi {
		t.Errorf("unacked_index score %v, want BRPOP's time rounded up, within [%v, %v]", score, lo, hi)
	}
	c.AckAsync(d)
	waitFor(t, func() bool { h, i := unackedCounts(t, tr); return h == 0 && i == 0 })
	if got := log.Take(); got != "zadd hset zrem hdel" {
		t.Fatalf("kept past the delay: commands %q, want the record, then the ack", got)
	}

	// A synchronous Ack has the record written at once and acks it
	// after; with a delay far longer than the test it would block.
	c.recordAfter = time.Hour
	d, _, _ = fetchOne("sync")
	if err := c.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
	empty("after Ack")
	if got := log.Take(); got != "zadd hset zrem hdel" {
		t.Fatalf("Ack: commands %q, want the record, then the ack", got)
	}
}

// TestBRPOPRecordKept: a delivery the worker keeps (acks late, ETA) is
// recorded at once on Keep, without the delay and without another Fetch.
func TestBRPOPRecordKept(t *testing.T) {
	const q = "reckept"
	tr := queueWith(t, q, "rk", 0)
	c := consumeT(t, tr, q)
	c.recordAfter = time.Hour
	ctx := ctxT(t)
	got := make(chan []*Delivery, 1)
	go func() {
		ds, err := c.Fetch(ctx, 1)
		if err != nil {
			t.Error(err)
		}
		got <- ds
	}()
	waitFor(t, func() bool { return c.brpops.Load() > 0 })
	pushTagged(t, tr, q, "kept", 1)
	ds := <-got
	if len(ds) != 1 {
		t.Fatalf("fetched %d", len(ds))
	}
	if h, _ := unackedCounts(t, tr); h != 0 {
		t.Fatalf("recorded before Keep with an hour's delay: %d entries", h)
	}
	c.Keep(ds...)
	waitFor(t, func() bool { h, i := unackedCounts(t, tr); return h == 1 && i == 1 })
	c.AckAsync(ds...)
	waitFor(t, func() bool { h, i := unackedCounts(t, tr); return h == 0 && i == 0 })
}
