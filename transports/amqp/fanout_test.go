package amqptransport

import (
	"context"
	"strings"
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

// TestBroadcastSubscribe declares Celery's pidbox entities, receives a
// fanout message without acking, survives a forced connection close and
// leaves no queue behind.
func TestBroadcastSubscribe(t *testing.T) {
	url := testVhost(t)
	vhost := url[strings.LastIndex(url, "/")+1:]
	tr := newTestTransport(t, url, Options{ReconnectMin: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex := transports.Exchange{Name: "celery.pidbox", Type: "fanout"}
	sub, err := tr.Subscribe(ctx, transports.Broadcast{
		Exchange:       ex,
		Queue:          "n1@h.celery.pidbox",
		QueueArguments: map[string]any{"x-message-ttl": 300000, "x-expires": 10000},
	})
	if err != nil {
		t.Fatal(err)
	}
	exs := rabbitmqctl(t, "list_exchanges", "-p", vhost, "name", "type", "durable")
	if !strings.Contains(exs, "celery.pidbox\tfanout\tfalse") {
		t.Errorf("exchange not declared as Celery does:\n%s", exs)
	}
	qs := rabbitmqctl(t, "list_queues", "-p", vhost, "name", "durable", "auto_delete", "arguments")
	if !strings.Contains(qs, "n1@h.celery.pidbox\tfalse\ttrue") || !strings.Contains(qs, "x-message-ttl") || !strings.Contains(qs, "x-expires") {
		t.Errorf("queue not declared as Celery does:\n%s", qs)
	}

	publish := func(body string) {
		t.Helper()
		m := &kombu.Message{Body: []byte(body), ContentType: "application/json", ContentEncoding: "utf-8",
			Headers: map[string]any{"clock": int64(3)}, Properties: kombu.Properties{DeliveryMode: 1}}
		if err := tr.Publish(ctx, "celery.pidbox", "", m); err != nil {
			t.Fatal(err)
		}
	}
	publish(`{"n": 1}`)
	got := recvMessage(t, sub, 5*time.Second)
	if string(got.Body) != `{"n": 1}` || got.Headers["clock"] != int64(3) || got.Properties.DeliveryInfo.Exchange != "celery.pidbox" {
		t.Errorf("received %+v", got)
	}
	// no_ack: nothing stays unacknowledged.
	waitFor(t, 5*time.Second, "no unacked messages", func() bool {
		return strings.Contains(rabbitmqctl(t, "list_queues", "-p", vhost, "name", "messages_unacknowledged"), "n1@h.celery.pidbox\t0")
	})

	rabbitmqctl(t, "close_all_connections", "-p", vhost, "celerity test")
	// After the reconnect the queue is declared again and consumed.
	deadline := time.Now().Add(15 * time.Second)
	for {
		publish(`{"n": 2}`)
		select {
		case m := <-sub.Messages():
			if string(m.Body) != `{"n": 2}` {
				t.Fatalf("after reconnect got %q", m.Body)
			}
		case <-time.After(200 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("subscription not restored after connection loss")
			}
			continue
		}
		break
	}

	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-sub.Messages(); ok {
		t.Error("Messages not closed after Close")
	}
	waitFor(t, 5*time.Second, "auto-delete queue gone", func() bool {
		return !strings.Contains(rabbitmqctl(t, "list_queues", "-p", vhost, "name"), "n1@h.celery.pidbox")
	})
}

func TestDeclareExchangeDurability(t *testing.T) {
	url := testVhost(t)
	vhost := url[strings.LastIndex(url, "/")+1:]
	tr := newTestTransport(t, url, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.DeclareExchange(ctx, transports.Exchange{Name: "celeryev", Type: "topic", Durable: true}); err != nil {
		t.Fatal(err)
	}
	if err := tr.DeclareExchange(ctx, transports.Exchange{Name: "reply.celery.pidbox", Type: "direct"}); err != nil {
		t.Fatal(err)
	}
	exs := rabbitmqctl(t, "list_exchanges", "-p", vhost, "name", "type", "durable")
	for _, want := range []string{"celeryev\ttopic\ttrue", "reply.celery.pidbox\tdirect\tfalse"} {
		if !strings.Contains(exs, want) {
			t.Errorf("missing %q in\n%s", want, exs)
		}
	}
	// Re-declaring with other flags is Rabbit's PRECONDITION_FAILED.
	if err := tr.DeclareExchange(ctx, transports.Exchange{Name: "celeryev", Type: "topic"}); err == nil {
		t.Error("redeclaring celeryev non-durable succeeded")
	}
	if tr.DriverType() != "amqp" {
		t.Errorf("DriverType = %q", tr.DriverType())
	}
}
