package redistransport

import (
	"context"
	"testing"
	"time"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

func recvMessage(t *testing.T, s transports.Subscription, d time.Duration) *kombu.Message {
	t.Helper()
	select {
	case m, ok := <-s.Messages():
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-time.After(d):
		t.Fatal("no message received")
	}
	return nil
}

func TestSubscribePattern(t *testing.T) {
	ks := newKeyspace(Options{GlobalKeyprefix: "p*x:"}.withDefaults(), 13)
	for _, tc := range []struct{ ex, key, want string }{
		{"celery.pidbox", "", `p\*x:/13.celery.pidbox`},
		{"celeryev", "#", `p\*x:/13.celeryev/*`},
		{"celeryev", "worker.#", `p\*x:/13.celeryev/worker.*`},
	} {
		if got := ks.subscribePattern(tc.ex, tc.key); got != tc.want {
			t.Errorf("subscribePattern(%q, %q) = %q, want %q", tc.ex, tc.key, got, tc.want)
		}
	}
}

func TestFanoutSubscribe(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ex := transports.Exchange{Name: "celery.pidbox", Type: "fanout"}
	sub, err := tr.Subscribe(ctx, transports.Broadcast{Exchange: ex, Queue: "n1@h.celery.pidbox"})
	if err != nil {
		t.Fatal(err)
	}
	// The binding is SADDed like kombu's _queue_bind.
	bkey := tr.opts.GlobalKeyprefix + "_kombu.binding.celery.pidbox"
	members, err := tr.client.SMembers(ctx, bkey).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0] != "\x06\x16\x06\x16n1@h.celery.pidbox" {
		t.Fatalf("binding members = %q", members)
	}
	// A second, unrelated exchange must not leak into this subscription.
	other, err := tr.Subscribe(ctx, transports.Broadcast{Exchange: transports.Exchange{Name: "celeryev", Type: "fanout"}, BindingKey: "worker.#", Queue: "ev1"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	m := &kombu.Message{Body: []byte(`{"method": "ping"}`), ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"clock": int64(7)}, Properties: kombu.Properties{DeliveryMode: 2}}
	if err := tr.Publish(ctx, "celery.pidbox", "", m); err != nil {
		t.Fatal(err)
	}
	got := recvMessage(t, sub, 5*time.Second)
	if string(got.Body) != `{"method": "ping"}` || got.ContentType != "application/json" || got.Headers["clock"] != int64(7) {
		t.Errorf("received %+v", got)
	}
	if got.Properties.DeliveryInfo.Exchange != "celery.pidbox" || got.Properties.DeliveryInfo.RoutingKey != "" {
		t.Errorf("delivery_info = %+v", got.Properties.DeliveryInfo)
	}

	// Topic-style binding keys: worker.# matches worker.heartbeat only.
	ev := &kombu.Message{Body: []byte(`{}`), ContentType: "application/json", ContentEncoding: "utf-8"}
	if err := tr.Publish(ctx, "celeryev", "task.succeeded", ev); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, "celeryev", "worker.heartbeat", ev); err != nil {
		t.Fatal(err)
	}
	got = recvMessage(t, other, 5*time.Second)
	if rk := got.Properties.DeliveryInfo.RoutingKey; rk != "worker.heartbeat" {
		t.Errorf("worker.# subscription got routing key %q", rk)
	}
	select {
	case m := <-sub.Messages():
		t.Errorf("pidbox subscription got an event: %+v", m)
	default:
	}

	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-sub.Messages(); ok {
		t.Error("Messages not closed after Close")
	}
	n, err := tr.client.SCard(ctx, bkey).Result()
	if err != nil || n != 0 {
		t.Errorf("binding left after Close: %d %v", n, err)
	}
}

// TestFanoutUndecodable checks that garbage on the channel is skipped.
func TestFanoutUndecodable(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := tr.Subscribe(ctx, transports.Broadcast{Exchange: transports.Exchange{Name: "bx", Type: "fanout"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch := tr.ks.fanoutChannel("bx", "")
	if err := tr.client.Publish(ctx, ch, "not json").Err(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, "bx", "", &kombu.Message{Body: []byte("1"), ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	if got := recvMessage(t, sub, 5*time.Second); string(got.Body) != "1" {
		t.Errorf("body = %q", got.Body)
	}
}

// A subscription to a direct exchange (a pidbox reply queue) is kombu's
// no-ack list consumer: the binding routes a publish with its routing key
// to the queue's list, the message is read without an unacked record,
// and Close removes the binding and the list.
func TestDirectSubscribe(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ex := transports.Exchange{Name: "reply.celery.pidbox", Type: "direct"}
	sub, err := tr.Subscribe(ctx, transports.Broadcast{Exchange: ex, BindingKey: "oid1", Queue: "oid1.reply.celery.pidbox"})
	if err != nil {
		t.Fatal(err)
	}
	bkey := tr.opts.GlobalKeyprefix + "_kombu.binding.reply.celery.pidbox"
	if members, _ := tr.client.SMembers(ctx, bkey).Result(); len(members) != 1 || members[0] != "oid1\x06\x16\x06\x16oid1.reply.celery.pidbox" {
		t.Fatalf("binding members = %q", members)
	}
	m := &kombu.Message{Body: []byte(`{"n@h": {"ok": "pong"}}`), ContentType: "application/json", ContentEncoding: "utf-8",
		Headers: map[string]any{"ticket": "t1"}}
	if err := tr.Publish(ctx, "reply.celery.pidbox", "other", m); err != nil { // not ours
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, "reply.celery.pidbox", "oid1", m); err != nil {
		t.Fatal(err)
	}
	got := recvMessage(t, sub, 5*time.Second)
	if got.Headers["ticket"] != "t1" || string(got.Body) != `{"n@h": {"ok": "pong"}}` {
		t.Errorf("received %v %q", got.Headers, got.Body)
	}
	if n, _ := tr.client.HLen(ctx, tr.opts.GlobalKeyprefix+"unacked").Result(); n != 0 {
		t.Errorf("unacked holds %d records; a no-ack read keeps none", n)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := tr.client.Exists(ctx, bkey, tr.opts.GlobalKeyprefix+"oid1.reply.celery.pidbox").Result(); n != 0 {
		t.Errorf("%d of the binding and the queue remain after Close", n)
	}
	if _, ok := <-sub.Messages(); ok {
		t.Error("messages channel still open after Close")
	}
}
