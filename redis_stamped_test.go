package celerity_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

// TestRedisResultJSONFollowsStampedHeaders: on Redis, where the worker
// reads task headers straight from the message text, a message with
// Celery 5.3+'s stamped_headers (null here, as Celery sends it) gets its
// result in kombu's typed JSON and a 5.2 message in plain JSON, as the
// default ResultJSON decides from that header.
func TestRedisResultJSONFollowsStampedHeaders(t *testing.T) {
	k := newKillable(t, "stamped", redistransport.Options{})
	startWorker(t, k, celerity.Config{}, "tasks.price", func(context.Context, *celerity.Request) (any, error) {
		return kombu.Decimal("1.10"), nil
	})
	publish := func(stamped bool) string {
		t.Helper()
		id := protocolv2.NewID()
		m, err := protocolv2.Encode(&protocolv2.Task{ID: id, Name: "tasks.price", RootID: id, UTC: true, Stamped: stamped},
			protocolv2.EncodeOptions{RoutingKey: "q"})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.Headers["stamped_headers"]; ok != stamped {
			t.Fatalf("Encode: stamped_headers present %v, want %v", ok, stamped)
		}
		if err := k.tr.Publish(context.Background(), "", "q", m); err != nil {
			t.Fatal(err)
		}
		return id
	}
	typed, plain := publish(true), publish(false)
	result := func(id string) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			doc, err := k.admin.Get(context.Background(), k.pfx+"celery-task-meta-"+id).Result()
			if err == nil {
				return doc
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no result for %s", id)
		return ""
	}
	if doc := result(typed); !strings.Contains(doc, `"result": {"__type__": "decimal", "__value__": "1.10"}`) {
		t.Errorf("5.3+ message: result %s, want kombu's typed decimal", doc)
	}
	if doc := result(plain); !strings.Contains(doc, `"result": "1.10"`) {
		t.Errorf("5.2 message: result %s, want the plain string", doc)
	}
}
