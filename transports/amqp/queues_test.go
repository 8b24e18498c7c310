package amqptransport

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/transports"
)

// queueChanger is what the worker uses for add_consumer/cancel_consumer.
type queueChanger interface {
	AddQueue(string) error
	CancelQueue(string) error
	Queues() []string
}

// fetchNone checks that no delivery arrives within d.
func fetchNone(t *testing.T, ctx context.Context, c transports.Consumer, d time.Duration) {
	t.Helper()
	short, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if ds, err := c.Fetch(short, 10); err == nil || len(ds) > 0 {
		t.Fatalf("fetched %d deliveries (%v), want none", len(ds), err)
	}
}

// AddQueue and CancelQueue change the live channel's consumers without
// disturbing unacknowledged deliveries of the other queues, survive a
// resubscription, and allow a consumer with no queue.
func TestAddCancelQueue(t *testing.T) {
	url := testVhost(t)
	vhost, _ := parseBrokerURLs(url)
	tr := newTestTransport(t, url, Options{ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	qa, qb := uniq(t)+".a", uniq(t)+".b"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, q := range []string{qa, qb} {
		if err := tr.Declare(ctx, transports.Queue{Name: q, Durable: true}); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(q, id string) {
		t.Helper()
		if err := tr.Publish(ctx, "", q, taskMessage(id, 0)); err != nil {
			t.Fatal(err)
		}
	}
	var cons transports.Consumer
	fetchFrom := func(q, id string) *transports.Delivery {
		t.Helper()
		d := fetchN(t, ctx, cons, 1)[0]
		if d.Queue != q || d.Message.Headers["id"] != id {
			t.Fatalf("got %s from %q, want %s from %q", d.Message.Headers["id"], d.Queue, id, q)
		}
		return d
	}
	cons, err := tr.Consume(ctx, []string{qa}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	qc := cons.(queueChanger)

	publish(qa, "a1")
	publish(qb, "b1")
	held := fetchFrom(qa, "a1") // unacknowledged across the changes below
	fetchNone(t, ctx, cons, 300*time.Millisecond)

	if err := qc.AddQueue(qb); err != nil {
		t.Fatal(err)
	}
	if err := qc.AddQueue(qb); err != nil {
		t.Fatal(err)
	}
	b1 := fetchFrom(qb, "b1")
	// A quorum queue cannot join a channel with global QoS: refused
	// without closing the channel.
	qq := uniq(t) + ".quorum"
	if err := tr.Declare(ctx, transports.Queue{Name: qq, Durable: true,
		Arguments: map[string]any{"x-queue-type": "quorum"}}); err != nil {
		t.Fatal(err)
	}
	if err := qc.AddQueue(qq); err == nil || !strings.Contains(err.Error(), "global QoS") {
		t.Errorf("AddQueue(quorum): %v", err)
	}
	if q := qc.Queues(); !slices.Equal(q, []string{qa, qb}) {
		t.Errorf("queues %v", q)
	}

	if err := qc.CancelQueue(qa); err != nil {
		t.Fatal(err)
	}
	publish(qa, "a2")
	fetchNone(t, ctx, cons, 300*time.Millisecond)
	// The channel lives on: the delivery taken before the cancel acks.
	if err := cons.Ack(ctx, held, b1); err != nil {
		t.Fatalf("ack after cancel: %v", err)
	}

	// After a lost connection only qb is consumed again.
	rabbitmqctl(t, "close_all_connections", "-p", vhost[0].vhost, "celerity test")
	publish(qb, "b2")
	fetchFrom(qb, "b2")
	if n := queueDepth(t, url, qa); n != 1 {
		t.Errorf("%s holds %d messages, want a2", qa, n)
	}

	// No queue at all, then qa again.
	if err := qc.CancelQueue(qb); err != nil {
		t.Fatal(err)
	}
	if q := qc.Queues(); len(q) != 0 {
		t.Errorf("queues after cancelling both: %v", q)
	}
	publish(qb, "b3")
	fetchNone(t, ctx, cons, 300*time.Millisecond)
	if err := qc.AddQueue(qa); err != nil {
		t.Fatal(err)
	}
	a2 := fetchFrom(qa, "a2")
	if err := cons.Ack(ctx, a2); err != nil {
		t.Fatal(err)
	}
	if n := queueDepth(t, url, qb); n != 1 {
		t.Errorf("%s holds %d messages, want b3", qb, n)
	}
}
