package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/resultstore"
)

type published struct {
	exchange, key string
	msg           *kombu.Message
}

type fakePublisher struct {
	got []published
	err error
}

func (f *fakePublisher) Publish(_ context.Context, exchange, key string, m *kombu.Message) error {
	if f.err != nil {
		return f.err
	}
	f.got = append(f.got, published{exchange, key, m})
	return nil
}

type captureFile struct {
	DeliveryInfo struct {
		RoutingKey string `json:"routing_key"`
	} `json:"delivery_info"`
	Properties struct {
		ContentType     string `json:"content_type"`
		ContentEncoding string `json:"content_encoding"`
		DeliveryMode    uint8  `json:"delivery_mode"`
		CorrelationID   string `json:"correlation_id"`
	} `json:"properties"`
	Headers map[string]any `json:"application_headers"`
	Body    string         `json:"body"`
}

func loadCapture(t *testing.T, name string) captureFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "captures", name))
	if err != nil {
		t.Fatal(err)
	}
	var c captureFile
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStoreMatchesCaptures rebuilds the captured Celery 5.2 rpc replies.
func TestStoreMatchesCaptures(t *testing.T) {
	success := loadCapture(t, "amqp-5.2-rpc-result-success.json")
	failure := loadCapture(t, "amqp-5.2-rpc-result-failure.json")
	var failDoc struct {
		Traceback string `json:"traceback"`
	}
	if err := json.Unmarshal([]byte(failure.Body), &failDoc); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cap  captureFile
		meta *resultstore.Meta
	}{
		{"success", success, &resultstore.Meta{
			TaskID: "dddddddd-0000-4000-8000-000000000001", Status: resultstore.Success, Result: int64(42),
			ReplyTo: "wire_rpc_reply", CorrelationID: "dddddddd-0000-4000-8000-000000000001",
		}},
		{"failure", failure, &resultstore.Meta{
			TaskID: "dddddddd-0000-4000-8000-000000000002", Status: resultstore.Failure,
			Result:    &resultstore.ExceptionInfo{Type: "MyError", Module: "wiretasks", Message: []any{"rpcboom", int64(42)}},
			Traceback: failDoc.Traceback,
			ReplyTo:   "wire_rpc_reply",
			// CorrelationID empty: falls back to the task id.
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub := &fakePublisher{}
			b := New(pub, Options{})
			if err := b.Store(context.Background(), c.meta); err != nil {
				t.Fatal(err)
			}
			if len(pub.got) != 1 {
				t.Fatalf("published %d", len(pub.got))
			}
			p := pub.got[0]
			if p.exchange != "" || p.key != c.cap.DeliveryInfo.RoutingKey {
				t.Errorf("exchange %q key %q", p.exchange, p.key)
			}
			m := p.msg
			if string(m.Body) != c.cap.Body {
				t.Errorf("body\n got %s\nwant %s", m.Body, c.cap.Body)
			}
			if m.ContentType != c.cap.Properties.ContentType || m.ContentEncoding != c.cap.Properties.ContentEncoding {
				t.Errorf("content %q %q", m.ContentType, m.ContentEncoding)
			}
			if m.Properties.CorrelationID != c.cap.Properties.CorrelationID || m.Properties.DeliveryMode != c.cap.Properties.DeliveryMode {
				t.Errorf("properties %+v", m.Properties)
			}
			if len(m.Headers) != 0 || len(c.cap.Headers) != 0 {
				t.Errorf("headers %v", m.Headers)
			}
		})
	}
}

func TestStoreOptionsAndSkips(t *testing.T) {
	pub := &fakePublisher{}
	b := New(pub, Options{Persistent: true, Serializer: "msgpack"})
	err := b.Store(context.Background(),
		&resultstore.Meta{TaskID: "a", Status: resultstore.Started}, // no reply_to: skipped
		&resultstore.Meta{TaskID: "b", Status: resultstore.Success, Result: "x", ReplyTo: "q1", CorrelationID: "corr"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(pub.got) != 1 {
		t.Fatalf("published %d, want 1", len(pub.got))
	}
	p := pub.got[0]
	if p.key != "q1" || p.msg.Properties.CorrelationID != "corr" || p.msg.Properties.DeliveryMode != 2 ||
		p.msg.ContentType != kombu.ContentTypeMsgpack || p.msg.ContentEncoding != "binary" {
		t.Errorf("message %+v key %q", p.msg, p.key)
	}
	reg, err := kombu.NewRegistry([]string{"msgpack"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := reg.Decode(p.msg.ContentType, p.msg.ContentEncoding, p.msg.Body)
	if err != nil {
		t.Fatal(err)
	}
	doc, ok := v.(map[string]any)
	if !ok || doc["task_id"] != "b" || doc["status"] != "SUCCESS" || doc["result"] != "x" || doc["traceback"] != nil || len(doc) != 5 {
		t.Errorf("msgpack doc %#v", v)
	}
	if ch, ok := doc["children"].([]any); !ok || len(ch) != 0 {
		t.Errorf("children %#v", doc["children"])
	}

	if err := b.Store(context.Background(), &resultstore.Meta{Status: "SUCCESS", ReplyTo: "q"}); !errors.Is(err, resultstore.ErrNoTaskID) {
		t.Errorf("missing task id: %v", err)
	}
	boom := errors.New("boom")
	failing := New(&fakePublisher{err: boom}, Options{})
	if err := failing.Store(context.Background(), &resultstore.Meta{TaskID: "c", Status: "SUCCESS", ReplyTo: "q"}); !errors.Is(err, boom) {
		t.Errorf("publish error: %v", err)
	}
	got, err := b.Get(context.Background(), "b")
	if got != nil || err != nil {
		t.Errorf("Get = %v, %v; want nil, nil", got, err)
	}
	closed := false
	if err := New(pub, Options{CloseFunc: func() error { closed = true; return nil }}).Close(); err != nil || !closed {
		t.Errorf("Close did not call CloseFunc")
	}
}
