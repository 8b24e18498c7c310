package amqptransport

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/internal/pyliteral"
	"github.com/celerity-go/celerity/kombu"
	amqp "github.com/rabbitmq/amqp091-go"
)

// capture is the py-amqp view of one message, as stored in
// testdata/captures/amqp-*.json.
type capture struct {
	DeliveryInfo struct {
		Redelivered bool   `json:"redelivered"`
		Exchange    string `json:"exchange"`
		RoutingKey  string `json:"routing_key"`
	} `json:"delivery_info"`
	Properties struct {
		ContentType     string `json:"content_type"`
		ContentEncoding string `json:"content_encoding"`
		DeliveryMode    uint8  `json:"delivery_mode"`
		Priority        uint8  `json:"priority"`
		CorrelationID   string `json:"correlation_id"`
		ReplyTo         string `json:"reply_to"`
		Expiration      string `json:"expiration"`
	} `json:"properties"`
	Headers  map[string]any `json:"application_headers"`
	Body     string         `json:"body"`
	BodyType string         `json:"body_type"`
}

func loadCapture(t testing.TB, name string) capture {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "captures", name))
	if err != nil {
		t.Fatal(err)
	}
	var c capture
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c capture) body(t testing.TB) []byte {
	t.Helper()
	if c.BodyType == "bytes" {
		b, err := pyliteral.Bytes(c.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return []byte(c.Body)
}

// wireTable turns JSON-decoded header values into the field types py-amqp
// puts on the wire: ints in int32 range as int32 ('I'), null as void,
// lists as arrays.
func wireTable(t testing.TB, m map[string]any) amqp.Table {
	out := amqp.Table{}
	for k, v := range m {
		out[k] = wireField(t, v)
	}
	return out
}

func wireField(t testing.TB, v any) any {
	switch x := v.(type) {
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			f, _ := x.Float64()
			return f
		}
		return intField(i)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = wireField(t, e)
		}
		return out
	case map[string]any:
		return wireTable(t, x)
	default:
		return x
	}
}

// plain turns JSON-decoded values into what MessageFromDelivery yields:
// integers as int64.
func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plain(e)
		}
		return out
	default:
		return x
	}
}

func TestMessageFromCaptures(t *testing.T) {
	for _, name := range []string{
		"amqp-5.2-task-basic.json",
		"amqp-5.2-task-eta-expires-prio-zlib.json",
		"amqp-5.2-rpc-result-success.json",
		"amqp-5.2-rpc-result-failure.json",
		"amqp-5.2-event-task-multi.json",
		"amqp-5.2-event-worker-heartbeat.json",
		"amqp-5.2-pidbox-ping-reply.json",
	} {
		t.Run(name, func(t *testing.T) {
			c := loadCapture(t, name)
			body := c.body(t)
			d := amqp.Delivery{
				Headers:         wireTable(t, c.Headers),
				ContentType:     c.Properties.ContentType,
				ContentEncoding: c.Properties.ContentEncoding,
				DeliveryMode:    c.Properties.DeliveryMode,
				Priority:        c.Properties.Priority,
				CorrelationId:   c.Properties.CorrelationID,
				ReplyTo:         c.Properties.ReplyTo,
				Expiration:      c.Properties.Expiration,
				DeliveryTag:     7,
				Redelivered:     c.DeliveryInfo.Redelivered,
				Exchange:        c.DeliveryInfo.Exchange,
				RoutingKey:      c.DeliveryInfo.RoutingKey,
				Body:            body,
			}
			m := MessageFromDelivery(&d)
			want := &kombu.Message{
				Body:            body,
				ContentType:     c.Properties.ContentType,
				ContentEncoding: c.Properties.ContentEncoding,
				Headers:         plain(c.Headers).(map[string]any),
				Properties: kombu.Properties{
					CorrelationID: c.Properties.CorrelationID,
					ReplyTo:       c.Properties.ReplyTo,
					DeliveryMode:  c.Properties.DeliveryMode,
					Priority:      int(c.Properties.Priority),
					Expiration:    c.Properties.Expiration,
					DeliveryInfo: kombu.DeliveryInfo{
						Exchange:    c.DeliveryInfo.Exchange,
						RoutingKey:  c.DeliveryInfo.RoutingKey,
						Redelivered: c.DeliveryInfo.Redelivered,
					},
				},
			}
			if !reflect.DeepEqual(m, want) {
				t.Fatalf("message mismatch\n got %#v\nwant %#v", m, want)
			}
			// Spot checks that do not depend on the helpers above.
			if name == "amqp-5.2-task-basic.json" {
				if m.Headers["task"] != "wiretasks.add" || m.Headers["retries"] != int64(0) ||
					m.Headers["eta"] != nil || m.Headers["ignore_result"] != false {
					t.Errorf("headers: %#v", m.Headers)
				}
				if tl, ok := m.Headers["timelimit"].([]any); !ok || len(tl) != 2 || tl[0] != nil || tl[1] != nil {
					t.Errorf("timelimit: %#v", m.Headers["timelimit"])
				}
				if _, ok := m.Headers["shadow"]; !ok {
					t.Errorf("void header shadow missing")
				}
			}
			if name == "amqp-5.2-task-eta-expires-prio-zlib.json" {
				if m.Properties.Priority != 7 || m.Properties.Expiration != "300000" || m.Body[0] != 0x78 || m.Body[1] != 0x9c {
					t.Errorf("props/body: %+v %x", m.Properties, m.Body[:2])
				}
			}

			// Encode direction: the publishing carries the same values
			// with py-amqp's wire types.
			p, err := PublishingFromMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Headers, d.Headers) {
				t.Errorf("headers table\n got %#v\nwant %#v", p.Headers, d.Headers)
			}
			if p.ContentType != d.ContentType || p.ContentEncoding != d.ContentEncoding ||
				p.DeliveryMode != d.DeliveryMode || p.Priority != d.Priority ||
				p.CorrelationId != d.CorrelationId || p.ReplyTo != d.ReplyTo ||
				p.Expiration != d.Expiration || string(p.Body) != string(d.Body) {
				t.Errorf("publishing %+v does not match delivery %+v", p, d)
			}
		})
	}
}

func TestFieldMapping(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	in := amqp.Table{
		"b":    int8(-3),
		"B":    uint8(200),
		"s":    int16(-300),
		"u":    uint16(60000),
		"I":    int32(-70000),
		"i":    uint32(4000000000),
		"l":    int64(1 << 40),
		"f":    float32(1.5),
		"d":    2.25,
		"D":    amqp.Decimal{Scale: 2, Value: 12345},
		"Dneg": amqp.Decimal{Scale: 3, Value: -5},
		"S":    "str",
		"t":    true,
		"V":    nil,
		"x":    []byte{0, 1},
		"T":    ts,
		"A":    []any{int32(1), nil, "a", []any{int16(2)}},
		"F":    amqp.Table{"n": int32(1), "deep": amqp.Table{"v": nil}},
	}
	want := map[string]any{
		"b": int64(-3), "B": int64(200), "s": int64(-300), "u": int64(60000),
		"I": int64(-70000), "i": int64(4000000000), "l": int64(1 << 40),
		"f": 1.5, "d": 2.25, "D": "123.45", "Dneg": "-0.005", "S": "str", "t": true,
		"V": nil, "x": []byte{0, 1}, "T": ts.UTC(),
		"A": []any{int64(1), nil, "a", []any{int64(2)}},
		"F": map[string]any{"n": int64(1), "deep": map[string]any{"v": nil}},
	}
	got := fromTable(in)
	for k, w := range want {
		if g, ok := got[k]; !ok || !reflect.DeepEqual(g, w) {
			t.Errorf("%s: got %#v (%T), want %#v (%T)", k, g, g, w, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d keys, want %d", len(got), len(want))
	}
	if err := in.Validate(); err != nil {
		t.Fatalf("input table invalid: %v", err)
	}
}

func TestToTable(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	cases := []struct {
		in   any
		want any
	}{
		{nil, nil},
		{true, true},
		{"s", "s"},
		{0, int32(0)},
		{int64(2147483647), int32(2147483647)},
		{int64(2147483648), int64(2147483648)},
		{int64(-2147483648), int64(-2147483648)}, // py-amqp: < -2147483647 is 'l'
		{uint64(5), int32(5)},
		{float32(0.5), 0.5},
		{json.Number("12"), int32(12)},
		{json.Number("1.5"), 1.5},
		{ts, ts},
		{[]byte("x"), []byte("x")},
		{[]string{"a", "b"}, []any{"a", "b"}},
		{[]any{1, nil, map[string]any{"k": int64(3)}}, []any{int32(1), nil, amqp.Table{"k": int32(3)}}},
		{map[string]any{"n": nil}, amqp.Table{"n": nil}},
	}
	for _, c := range cases {
		got, err := toField(c.in)
		if err != nil {
			t.Errorf("%#v: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%#v: got %#v (%T), want %#v (%T)", c.in, got, got, c.want, c.want)
		}
	}
	for _, bad := range []any{struct{}{}, uint64(1 << 63), make(chan int), map[int]int{}} {
		if _, err := toField(bad); err == nil {
			t.Errorf("%#v: expected error", bad)
		}
	}
	tb, err := toTable(map[string]any{"a": []any{1, "x", map[string]any{"b": nil}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Validate(); err != nil {
		t.Errorf("amqp091 rejects the table: %v", err)
	}
}

func TestPublishingExtraProperties(t *testing.T) {
	ts := time.Unix(1700000000, 0).UTC()
	m := &kombu.Message{Properties: kombu.Properties{Priority: 9, Extra: map[string]any{
		"message_id": "mid", "timestamp": ts, "type": "ty", "user_id": "guest", "app_id": "app",
	}}}
	p, err := PublishingFromMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	if p.MessageId != "mid" || !p.Timestamp.Equal(ts) || p.Type != "ty" || p.UserId != "guest" || p.AppId != "app" || p.Priority != 9 {
		t.Fatalf("publishing %+v", p)
	}
	back := MessageFromDelivery(&amqp.Delivery{MessageId: p.MessageId, Timestamp: p.Timestamp, Type: p.Type, UserId: p.UserId, AppId: p.AppId})
	if !reflect.DeepEqual(back.Properties.Extra, m.Properties.Extra) {
		t.Fatalf("extra round trip: %#v", back.Properties.Extra)
	}
	if _, err := PublishingFromMessage(&kombu.Message{Properties: kombu.Properties{Priority: 256}}); err == nil {
		t.Fatal("priority 256 accepted")
	}
}

func TestParseBrokerURLs(t *testing.T) {
	cases := []struct {
		in     string
		vhosts []string
		dials  []string
	}{
		{"amqp://guest:guest@localhost:5672//", []string{"/"}, []string{"amqp://guest:guest@localhost:5672"}},
		{"amqp://guest:guest@localhost:5672/", []string{"/"}, nil},
		{"amqp://localhost", []string{"/"}, []string{"amqp://guest:guest@localhost"}},
		{"amqp://u:p@h/vh", []string{"vh"}, nil},
		{"amqp://u:p@h/%2Fx", []string{"/x"}, nil},
		{"pyamqp://u:p@h:1//", []string{"/"}, []string{"amqp://u:p@h:1"}},
		{"amqp://a//;amqps://b:5671/v", []string{"/", "v"}, []string{"amqp://guest:guest@a", "amqps://guest:guest@b:5671"}},
	}
	for _, c := range cases {
		got, err := parseBrokerURLs(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if len(got) != len(c.vhosts) {
			t.Errorf("%s: %d urls", c.in, len(got))
			continue
		}
		for i := range got {
			if got[i].vhost != c.vhosts[i] {
				t.Errorf("%s[%d]: vhost %q, want %q", c.in, i, got[i].vhost, c.vhosts[i])
			}
			if c.dials != nil && got[i].dial != c.dials[i] {
				t.Errorf("%s[%d]: dial %q, want %q", c.in, i, got[i].dial, c.dials[i])
			}
			if strings.Contains(got[i].redacted, ":p@") || strings.Contains(got[i].redacted, "guest:guest") {
				t.Errorf("%s: password not redacted: %s", c.in, got[i].redacted)
			}
		}
	}
	for _, bad := range []string{"", "redis://x", ";"} {
		if _, err := parseBrokerURLs(bad); err == nil {
			t.Errorf("%q: expected error", bad)
		}
	}
}

func FuzzParseBrokerURLs(f *testing.F) {
	for _, s := range []string{"amqp://guest:guest@localhost:5672//", "amqp://a;amqps://b/v", "pyamqp://u:p@h:1/%2F", "amqp://[::1", ";;", "amqp://h/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		us, err := parseBrokerURLs(s)
		if err != nil {
			return
		}
		for _, u := range us {
			if u.vhost == "" || u.dial == "" {
				t.Fatalf("%q: empty vhost or dial url: %+v", s, u)
			}
		}
	})
}
