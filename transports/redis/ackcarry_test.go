package redistransport

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

// pushTagged LPUSHes n envelopes with delivery tags prefix-0000... on q.
func pushTagged(t *testing.T, tr *Transport, q, prefix string, n int) {
	t.Helper()
	ctx := ctxT(t)
	m := benchMessage()
	for i := range n {
		mm := *m
		mm.Properties.DeliveryTag = fmt.Sprintf("%s-%04d", prefix, i)
		mm.Properties.DeliveryInfo = kombu.DeliveryInfo{RoutingKey: q}
		mm.Properties.BodyEncoding = "base64"
		data, err := kombu.AppendEnvelope(nil, &mm)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.client.LPush(ctx, tr.ks.prefix+q, data).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// queueWith returns a transport with queue q declared and n tagged
// messages on it.
func queueWith(t *testing.T, q, prefix string, n int) *Transport {
	t.Helper()
	tr := newTestTransport(t, Options{PollTimeout: time.Second})
	if err := tr.Declare(ctxT(t), transports.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	pushTagged(t, tr, q, prefix, n)
	return tr
}

// fetchN fetches exactly n deliveries.
func fetchN(t *testing.T, c *Consumer, n int) []*Delivery {
	t.Helper()
	ds, err := c.Fetch(ctxT(t), n)
	if err != nil || len(ds) != n {
		t.Fatalf("fetch: %d deliveries, want %d (%v)", len(ds), n, err)
	}
	return ds
}

// unackedCounts reads HLEN unacked and ZCARD unacked_index in one MULTI.
func unackedCounts(t *testing.T, tr *Transport) (hash, index int64) {
	t.Helper()
	ctx := ctxT(t)
	pipe := tr.client.TxPipeline()
	hl := pipe.HLen(ctx, tr.ks.prefix+"unacked")
	zc := pipe.ZCard(ctx, tr.ks.prefix+"unacked_index")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	return hl.Val(), zc.Val()
}

// TestAckCarriedByNextPop: acks pending when a pop script runs are
// removed from unacked by that same call (no MULTI/EXEC of their own),
// and Ack returns only once they are gone.
func TestAckCarriedByNextPop(t *testing.T) {
	const q = "ackcarry_q"
	tr := queueWith(t, q, "carry", 6)
	ctx := ctxT(t)
	c := consumeT(t, tr, q)
	c.linger = time.Minute // only a pop may send the first ack
	first := fetchN(t, c, 3)
	acked := make(chan error, 1)
	go func() { acked <- c.Ack(ctx, first...) }()
	// Wait until the ack is queued, then pop: the pop must carry it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.ackMu.Lock()
		n := len(c.acks)
		c.ackMu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ack was not queued")
		}
		time.Sleep(50 * time.Microsecond)
	}
	second := fetchN(t, c, 3)
	if err := <-acked; err != nil {
		t.Fatalf("ack: %v", err)
	}
	if got := c.carried.Load(); got != 3 {
		t.Errorf("pop carried %d acks, want 3", got)
	}
	p := tr.ks.prefix
	for _, d := range first {
		if ok, _ := tr.client.HExists(ctx, p+"unacked", d.Tag).Result(); ok {
			t.Errorf("%s still in unacked after its ack", d.Tag)
		}
		if s, err := tr.client.ZScore(ctx, p+"unacked_index", d.Tag).Result(); err == nil {
			t.Errorf("%s still in unacked_index (score %v)", d.Tag, s)
		}
	}
	for _, d := range second {
		if ok, _ := tr.client.HExists(ctx, p+"unacked", d.Tag).Result(); !ok {
			t.Errorf("%s (not acked) missing from unacked", d.Tag)
		}
	}
}

// TestAckFlushedWithoutPop: with no pop to carry it, an ack is sent on
// its own after the linger and Ack returns once it is done.
func TestAckFlushedWithoutPop(t *testing.T) {
	const q = "ackflush_q"
	tr := queueWith(t, q, "flush", 2)
	ctx := ctxT(t)
	c := consumeT(t, tr, q)
	ds := fetchN(t, c, 2)
	if n, _ := unackedCounts(t, tr); n != 2 {
		t.Fatalf("unacked holds %d entries before the ack, want 2", n)
	}
	if err := c.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	if got := c.carried.Load(); got != 0 {
		t.Errorf("%d acks counted as carried with no pop after them", got)
	}
	if n, m := unackedCounts(t, tr); n != 0 || m != 0 {
		t.Errorf("unacked / unacked_index hold %d / %d entries after Ack returned", n, m)
	}
}

// TestAckAfterClose: once the consumer is closed, Ack still removes the
// entries (directly, as nothing will pop again).
func TestAckAfterClose(t *testing.T) {
	const q = "ackclose_q"
	tr := queueWith(t, q, "closed", 2)
	ctx := ctxT(t)
	c := consumeT(t, tr, q)
	ds := fetchN(t, c, 2)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	if n, m := unackedCounts(t, tr); n != 0 || m != 0 {
		t.Errorf("unacked / unacked_index hold %d / %d entries after Ack on a closed consumer", n, m)
	}
}

// TestAckAsync: fire-and-forget acks are carried by the next pop, sent by
// the flusher when no pop comes, and sent on Close when still queued.
func TestAckAsync(t *testing.T) {
	const q = "ackasync_q"
	tr := queueWith(t, q, "async", 7)
	unacked := func() int64 {
		n, m := unackedCounts(t, tr)
		if n != m {
			t.Errorf("unacked has %d entries, unacked_index %d", n, m)
		}
		return n
	}
	c := consumeT(t, tr, q)
	c.linger = time.Minute
	first := fetchN(t, c, 2)
	c.AckAsync(first...)
	if got := unacked(); got != 2 {
		t.Fatalf("AckAsync sent at once (unacked %d), want it carried by the next pop", got)
	}
	second := fetchN(t, c, 2)
	if got := c.carried.Load(); got != 2 {
		t.Errorf("pop carried %d acks, want 2", got)
	}
	if got := unacked(); got != 2 {
		t.Errorf("unacked holds %d entries, want the 2 of the second fetch", got)
	}
	// Queued with nothing to carry them: Close sends them.
	c.AckAsync(second...)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := unacked(); got != 0 {
		t.Errorf("unacked holds %d entries after Close sent the queued acks", got)
	}
	// A second consumer with the normal linger: the flusher sends them.
	c2 := consumeT(t, tr, q)
	third := fetchN(t, c2, 3)
	c2.AckAsync(third...)
	deadline := time.Now().Add(5 * time.Second)
	for unacked() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the flusher did not send acks no pop carried")
		}
		time.Sleep(time.Millisecond)
	}
	if got := c2.carried.Load(); got != 0 {
		t.Errorf("%d acks counted as carried with no pop after them", got)
	}
}

// TestBRPOPDeliveryRecordedAfterHandOut: a message the blocking fallback
// pops is handed out at once; an AckAsync that comes before its record
// is sent after it (nothing is left in unacked), and a Restore waits for
// the record, then puts the message back.
func TestBRPOPDeliveryRecordedAfterHandOut(t *testing.T) {
	tr := newTestTransport(t, Options{PollTimeout: time.Second})
	ctx := ctxT(t)
	const q = "brpoprec_q"
	if err := tr.Declare(ctx, transports.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	p := tr.ks.prefix
	c := consumeT(t, tr, q)
	for round, restore := range []bool{false, true} {
		got := make(chan []*Delivery, 1)
		go func() {
			ds, err := c.Fetch(ctx, 1) // queue empty: waits in BRPOP
			if err != nil {
				t.Error(err)
			}
			got <- ds
		}()
		deadline := time.Now().Add(5 * time.Second)
		for c.brpops.Load() != int64(round+1) {
			if time.Now().After(deadline) {
				t.Fatal("fetch did not fall back to BRPOP")
			}
			time.Sleep(time.Millisecond)
		}
		pushTagged(t, tr, q, fmt.Sprintf("brpop%d", round), 1)
		ds := <-got
		if len(ds) != 1 {
			t.Fatalf("round %d: %d deliveries", round, len(ds))
		}
		d := ds[0]
		if _, ok := d.Token.(*recordState); !ok {
			t.Fatalf("round %d: BRPOP delivery has no record state (%T)", round, d.Token)
		}
		if restore {
			if err := c.Restore(ctx, d); err != nil {
				t.Fatal(err)
			}
			if n, _ := tr.client.LLen(ctx, p+q).Result(); n != 1 {
				t.Errorf("restored message: queue holds %d, want 1", n)
			}
		} else {
			c.AckAsync(d)
			if err := c.waitRecorded(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		deadline = time.Now().Add(5 * time.Second)
		for {
			n, _ := tr.client.HLen(ctx, p+"unacked").Result()
			m, _ := tr.client.ZCard(ctx, p+"unacked_index").Result()
			if n == 0 && m == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: unacked %d / unacked_index %d entries left", round, n, m)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestAckAsyncSurvivesConnectionLoss: queued acks still reach Redis when
// the consumer's connections are killed before the pop that carries them
// (the pop fails or go-redis redials; either way no ack is lost and no
// message is acked twice or left behind).
func TestAckAsyncSurvivesConnectionLoss(t *testing.T) {
	const q = "ackkill_q"
	name := fmt.Sprintf("ackkill-%d", time.Now().UnixNano())
	tr := newTestTransport(t, Options{PollTimeout: time.Second, ClientName: name})
	ctx := ctxT(t)
	if err := tr.Declare(ctx, transports.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	pushTagged(t, tr, q, "kill", 10)
	c := consumeT(t, tr, q)
	c.linger = time.Minute // only the pop (or Close) may send them
	first := fetchN(t, c, 5)
	c.AckAsync(first...)
	if h, _ := unackedCounts(t, tr); h != 5 {
		t.Fatalf("unacked holds %d before the carrying pop, want 5", h)
	}
	// Kill this transport's connections only (other tests share Redis).
	list, err := tr.client.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if err := tr.client.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err == nil {
					killed++
				}
			}
		}
	}
	if killed == 0 {
		t.Fatalf("no connection named %s to kill in CLIENT LIST", name)
	}
	var second []*Delivery
	deadline := time.Now().Add(10 * time.Second)
	for len(second) == 0 {
		ds, err := c.Fetch(ctx, 5)
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("fetch after the connections were killed: %v", err)
		}
		second = ds
	}
	// The acks went with that pop, or were queued again for the next
	// send; Close sends whatever is still queued.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	p := tr.ks.prefix
	for _, d := range first {
		if ok, _ := tr.client.HExists(ctx, p+"unacked", d.Tag).Result(); ok {
			t.Errorf("acked %s still in unacked", d.Tag)
		}
	}
	h, z := unackedCounts(t, tr)
	if h != int64(len(second)) || z != int64(len(second)) {
		t.Errorf("unacked %d / unacked_index %d, want the %d unacked deliveries of the second fetch", h, z, len(second))
	}
}

// TestSettleAcksRequeuesFireAndForget: when the call carrying acks fails,
// a waiting Ack gets the error (its caller retries) while AckAsync's tags
// go back to the front of the queue for the next send.
func TestSettleAcksRequeuesFireAndForget(t *testing.T) {
	c := &Consumer{ackKick: make(chan struct{}, 1)}
	c.acks = []*pendingAck{{tags: []string{"later"}}}
	waiter := &pendingAck{tags: []string{"w"}, done: make(chan error, 1)}
	async := &pendingAck{tags: []string{"a1", "a2"}}
	boom := errors.New("connection reset")
	c.settleAcks([]*pendingAck{waiter, async}, boom)
	if err := <-waiter.done; !errors.Is(err, boom) {
		t.Errorf("waiter got %v, want %v", err, boom)
	}
	if len(c.acks) != 2 || c.acks[0] != async || c.acks[1].tags[0] != "later" {
		t.Fatalf("queue after a failed send: %+v, want the async ack first, then the later one", c.acks)
	}
	select {
	case <-c.ackKick:
	default:
		t.Error("the flusher was not woken to retry")
	}
	c.settleAcks([]*pendingAck{async}, nil)
	if len(c.acks) != 2 {
		t.Errorf("a successful send queued acks again: %d queued", len(c.acks))
	}
}
