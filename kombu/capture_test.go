package kombu

import (
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/celerity-go/celerity/internal/pyliteral"
)

const captureDir = "../testdata/captures"

func readCapture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(captureDir, name))
	if err != nil {
		t.Fatalf("read capture: %v", err)
	}
	return b
}

func embedNone() map[string]any {
	return map[string]any{"callbacks": nil, "errbacks": nil, "chain": nil, "chord": nil}
}

func mustUUID(s string) UUID {
	u, err := ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return u
}

// envelopeCase is the expected decoding of one Redis envelope capture.
type envelopeCase struct {
	file        string
	contentType string
	encoding    string
	task        string // headers["task"]; "" when absent
	id          string
	corrID      string
	routingKey  string
	expiration  string
	compression string
	extra       map[string]any
	args        any // expected body[0] (protocol v2) or nil to skip
	kwargs      any
	body        any // expected whole body when set
}

var envelopeCases = []envelopeCase{
	{file: "redis-5.2-task-basic.json", task: "wiretasks.add", id: "11111111-1111-4111-8111-111111111111",
		args: []any{int64(2), int64(3)}, kwargs: map[string]any{}},
	{file: "redis-5.6-task-basic.json", task: "wiretasks.add", id: "11111111-1111-4111-8111-111111111111",
		args: []any{int64(2), int64(3)}, kwargs: map[string]any{}},
	{file: "redis-5.2-task-chain.json", task: "wiretasks.add", id: "7e5d2cb7-8c3c-4821-9cdc-148ceb593f09",
		args: []any{int64(1), int64(2)}, kwargs: map[string]any{}},
	{file: "redis-5.2-task-chord-callback.json", task: "wiretasks.xsum", id: "4257416b-e2f2-49cb-9000-c84cd4e3e6ac",
		args: []any{[]any{int64(2), int64(4), int64(6)}}, kwargs: map[string]any{}},
	{file: "redis-5.2-task-chord-header.json", task: "wiretasks.add", id: "1631d054-e400-4c6b-a154-d91c5476fe0e",
		args: []any{int64(2), int64(2)}, kwargs: map[string]any{}},
	{file: "redis-5.6-task-chord-header.json", task: "wiretasks.add", id: "c8599fe8-d547-4115-b994-6d8b44714f6b",
		args: []any{int64(2), int64(2)}, kwargs: map[string]any{}},
	{file: "redis-5.2-task-countdown-expires.json", task: "wiretasks.add", id: "11111111-1111-4111-8111-111111111111",
		expiration: "120000", args: []any{}, kwargs: map[string]any{"x": int64(1), "y": int64(2)}},
	{file: "redis-5.2-task-group-member.json", task: "wiretasks.add", id: "f8d6c16f-c165-4b24-84c2-c2ce9feaf0b9",
		args: []any{int64(2), int64(2)}, kwargs: map[string]any{}},
	{file: "redis-5.2-task-link-callback.json", task: "wiretasks.mul", id: "9927decd-d45d-4eb3-acc6-49b8b9dd5abf",
		args: []any{int64(2), int64(10)}, kwargs: map[string]any{}},
	{file: "redis-5.2-task-link-errback.json", task: "wiretasks.add", id: "11111111-1111-4111-8111-111111111111",
		args: []any{int64(1), int64(1)}, kwargs: map[string]any{}},
	{file: "redis-5.2-task-old-style-errback.json", task: "wiretasks.on_err_old", id: "d17e0479-4532-4f2a-aaba-b3d009e85478",
		args: []any{"aaaaaaaa-0000-4000-8000-000000000005"}, kwargs: map[string]any{}},
	{file: "redis-5.2-task-msgpack.json", contentType: ContentTypeMsgpack, encoding: "binary", task: "wiretasks.add",
		id:   "11111111-1111-4111-8111-111111111111",
		body: []any{[]any{int64(1), int64(2)}, map[string]any{}, embedNone()}},
	{file: "redis-5.2-task-zlib.json", task: "wiretasks.add", id: "11111111-1111-4111-8111-111111111111",
		compression: CompressionZlib,
		body:        []any{[]any{int64(1), int64(2)}, map[string]any{}, embedNone()}},
	{file: "redis-5.2-task-protocol-v1.json", id: "", corrID: "12121212-0000-4000-8000-000000000001"},
	{file: "redis-5.2-task-retry-republished.json", task: "wiretasks.retry_once", id: "aaaaaaaa-0000-4000-8000-000000000003",
		extra: map[string]any{"replaced_task_nesting": int64(0), "origin": "gen12338@vm"},
		args:  []any{int64(7)}, kwargs: map[string]any{}},
	{file: "redis-5.6-task-retry-republished.json", task: "wiretasks.retry_once", id: "aaaaaaaa-0000-4000-8000-000000000003",
		extra: map[string]any{"origin": "gen14067@vm"},
		args:  []any{int64(7)}, kwargs: map[string]any{}},
	{file: "redis-5.2-task-send_task-options.json", task: "wiretasks.add", id: "11111111-1111-4111-8111-111111111111",
		routingKey: "wire_other", args: []any{int64(5), int64(6)}, kwargs: map[string]any{}},
	{file: "redis-5.2-task-json-special-types.json", task: "wiretasks.echo", id: "11111111-1111-4111-8111-111111111111",
		// kombu 5.2 writes plain strings.
		args: []any{"2024-01-02T03:04:05.600000Z", "2024-01-02T03:04:05", "2024-01-02T00:00:00", "03:04:05",
			"1.10", "12345678-1234-5678-1234-567812345678"},
		kwargs: map[string]any{}},
	{file: "redis-5.6-task-json-special-types.json", task: "wiretasks.echo", id: "11111111-1111-4111-8111-111111111111",
		args: []any{
			time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.UTC),
			time.Date(2024, 1, 2, 3, 4, 5, 0, Naive),
			Date{2024, time.January, 2},
			TimeOfDay{Hour: 3, Minute: 4, Second: 5},
			Decimal("1.10"),
			mustUUID("12345678-1234-5678-1234-567812345678"),
		},
		kwargs: map[string]any{}},
	{file: "redis-5.6-task-json-bytes.json", task: "wiretasks.echo", id: "11111111-1111-4111-8111-111111111111",
		args: []any{[]byte("abc"), []byte{0xff, 0x00}}, kwargs: map[string]any{}},
}

// valuesEqual compares decoded values; time.Time by instant and location
// identity, *big.Int by value.
func valuesEqual(a, b any) bool {
	switch x := a.(type) {
	case time.Time:
		y, ok := b.(time.Time)
		if !ok || !x.Equal(y) {
			return false
		}
		_, ox := x.Zone()
		_, oy := y.Zone()
		return ox == oy && (x.Location() == Naive) == (y.Location() == Naive)
	case *big.Int:
		y, ok := b.(*big.Int)
		return ok && x.Cmp(y) == 0
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !valuesEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !valuesEqual(v, w) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func TestEveryRedisTaskCaptureHasACase(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(captureDir, "redis-*-task-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures: %v", err)
	}
	have := map[string]bool{}
	for _, c := range envelopeCases {
		have[c.file] = true
	}
	for _, f := range files {
		if !have[filepath.Base(f)] {
			t.Errorf("capture %s has no golden case", filepath.Base(f))
		}
	}
}

func TestDecodeEnvelopeCaptures(t *testing.T) {
	reg, err := NewRegistry([]string{"json", "msgpack"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range envelopeCases {
		t.Run(c.file, func(t *testing.T) {
			raw := readCapture(t, c.file)
			m, err := DecodeEnvelope(raw)
			if err != nil {
				t.Fatalf("DecodeEnvelope: %v", err)
			}
			wantCT, wantEnc := c.contentType, c.encoding
			if wantCT == "" {
				wantCT, wantEnc = ContentTypeJSON, "utf-8"
			}
			if m.ContentType != wantCT || m.ContentEncoding != wantEnc {
				t.Errorf("content = %q/%q, want %q/%q", m.ContentType, m.ContentEncoding, wantCT, wantEnc)
			}
			if got, _ := m.Headers["task"].(string); got != c.task {
				t.Errorf("headers.task = %q, want %q", got, c.task)
			}
			if got, _ := m.Headers["id"].(string); got != c.id {
				t.Errorf("headers.id = %q, want %q", got, c.id)
			}
			corr := c.corrID
			if corr == "" {
				corr = c.id
			}
			p := m.Properties
			if p.CorrelationID != corr {
				t.Errorf("correlation_id = %q, want %q", p.CorrelationID, corr)
			}
			rk := c.routingKey
			if rk == "" {
				rk = "wire_q"
			}
			if p.DeliveryInfo != (DeliveryInfo{Exchange: "", RoutingKey: rk}) {
				t.Errorf("delivery_info = %+v", p.DeliveryInfo)
			}
			if p.DeliveryMode != 2 || p.Priority != 0 || p.BodyEncoding != "base64" {
				t.Errorf("delivery_mode/priority/body_encoding = %d/%d/%q", p.DeliveryMode, p.Priority, p.BodyEncoding)
			}
			if len(p.DeliveryTag) != 36 || p.ReplyTo == "" {
				t.Errorf("delivery_tag %q reply_to %q", p.DeliveryTag, p.ReplyTo)
			}
			if p.Expiration != c.expiration {
				t.Errorf("expiration = %q, want %q", p.Expiration, c.expiration)
			}
			if !valuesEqual(anyMap(p.Extra), anyMap(c.extra)) {
				t.Errorf("extra = %#v, want %#v", p.Extra, c.extra)
			}
			if got, _ := m.Headers["compression"].(string); got != c.compression {
				t.Errorf("compression header = %q, want %q", got, c.compression)
			}
			// Headers that are JSON null / lists keep the value model.
			if c.task != "" {
				if tl, ok := m.Headers["timelimit"].([]any); !ok || len(tl) != 2 {
					t.Errorf("timelimit = %#v", m.Headers["timelimit"])
				}
				if r, ok := m.Headers["retries"].(int64); !ok || r < 0 {
					t.Errorf("retries = %#v", m.Headers["retries"])
				}
			}

			body, err := reg.DecodeBody(m)
			if err != nil {
				t.Fatalf("DecodeBody: %v", err)
			}
			if c.body != nil && !valuesEqual(body, c.body) {
				t.Errorf("body = %#v, want %#v", body, c.body)
			}
			if c.args != nil {
				parts, ok := body.([]any)
				if !ok || len(parts) != 3 {
					t.Fatalf("body is not [args, kwargs, embed]: %#v", body)
				}
				if !valuesEqual(parts[0], c.args) {
					t.Errorf("args = %#v, want %#v", parts[0], c.args)
				}
				if !valuesEqual(parts[1], c.kwargs) {
					t.Errorf("kwargs = %#v, want %#v", parts[1], c.kwargs)
				}
				if _, ok := parts[2].(map[string]any); !ok {
					t.Errorf("embed = %#v", parts[2])
				}
			}
			if c.file == "redis-5.2-task-protocol-v1.json" {
				bm, ok := body.(map[string]any)
				if !ok || bm["task"] != "wiretasks.add" || !valuesEqual(bm["args"], []any{int64(1), int64(2)}) ||
					bm["eta"] != "2026-11-26T08:04:09.035546+00:00" || bm["utc"] != true {
					t.Errorf("v1 body = %#v", body)
				}
				if len(m.Headers) != 0 || m.Headers == nil {
					t.Errorf("v1 headers = %#v, want empty map", m.Headers)
				}
			}

			// The re-encoded envelope decodes to the same message.
			out, err := AppendEnvelope(nil, m)
			if err != nil {
				t.Fatalf("AppendEnvelope: %v", err)
			}
			m2, err := DecodeEnvelope(out)
			if err != nil {
				t.Fatalf("re-decode: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(m2.Body, m.Body) || m2.ContentType != m.ContentType ||
				m2.ContentEncoding != m.ContentEncoding || !valuesEqual(anyMap(m2.Headers), anyMap(m.Headers)) ||
				!reflect.DeepEqual(propsNoExtra(m2.Properties), propsNoExtra(m.Properties)) ||
				!valuesEqual(anyMap(m2.Properties.Extra), anyMap(m.Properties.Extra)) {
				t.Errorf("round trip differs:\n%+v\n%+v", m, m2)
			}
		})
	}
}

func anyMap(m map[string]any) any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func propsNoExtra(p Properties) Properties {
	p.Extra = nil
	return p
}

// The 5.6 typed capture re-encodes byte for byte in JSONTyped mode, and the
// 5.2 one in JSONPlain mode (args list; dict key order differs).
func TestReencodeSpecialTypesByteForByte(t *testing.T) {
	for _, tc := range []struct {
		file string
		mode JSONMode
		args []any
	}{
		{"redis-5.6-task-json-special-types.json", JSONTyped, nil},
		{"redis-5.6-task-json-bytes.json", JSONTyped, nil},
		{"redis-5.2-task-json-special-types.json", JSONPlain, []any{
			time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.UTC),
			time.Date(2024, 1, 2, 3, 4, 5, 0, Naive),
			Date{2024, time.January, 2},
			TimeOfDay{Hour: 3, Minute: 4, Second: 5},
			Decimal("1.10"),
			mustUUID("12345678-1234-5678-1234-567812345678"),
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m, err := DecodeEnvelope(readCapture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			args := tc.args
			if args == nil {
				v, err := UnmarshalJSON(m.Body)
				if err != nil {
					t.Fatal(err)
				}
				args = v.([]any)[0].([]any)
			}
			enc, err := AppendJSON([]byte("["), args, tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(m.Body), string(enc)+", {}, ") {
				t.Errorf("re-encoded args\n%s\nare not a prefix of\n%s", enc, m.Body)
			}
		})
	}
}

// amqpCapture is py-amqp's decoded view of a basic_get.
type amqpCapture struct {
	Properties struct {
		ContentType     string `json:"content_type"`
		ContentEncoding string `json:"content_encoding"`
		DeliveryMode    uint8  `json:"delivery_mode"`
		Priority        int    `json:"priority"`
		CorrelationID   string `json:"correlation_id"`
		ReplyTo         string `json:"reply_to"`
		Expiration      string `json:"expiration"`
	} `json:"properties"`
	DeliveryInfo struct {
		Redelivered bool   `json:"redelivered"`
		Exchange    string `json:"exchange"`
		RoutingKey  string `json:"routing_key"`
	} `json:"delivery_info"`
	ApplicationHeaders json.RawMessage `json:"application_headers"`
	Body               string          `json:"body"`
	BodyType           string          `json:"body_type"`
}

func TestAMQPCaptures(t *testing.T) {
	reg, _ := NewRegistry(nil)
	cases := []struct {
		file  string
		check func(t *testing.T, m *Message, body any)
	}{
		{"amqp-5.2-task-basic.json", func(t *testing.T, m *Message, body any) {
			want := []any{[]any{int64(2), int64(3)}, map[string]any{}, embedNone()}
			if !valuesEqual(body, want) {
				t.Errorf("body %#v", body)
			}
			if m.Properties.CorrelationID != "cccccccc-0000-4000-8000-000000000001" || m.Properties.DeliveryMode != 2 {
				t.Errorf("props %+v", m.Properties)
			}
		}},
		{"amqp-5.2-task-eta-expires-prio-zlib.json", func(t *testing.T, m *Message, body any) {
			if !strings.HasPrefix(string(m.Body), "x\x9c") {
				t.Errorf("body is not a zlib stream: %q", m.Body[:4])
			}
			want := []any{[]any{int64(2), int64(3)}, map[string]any{}, embedNone()}
			if !valuesEqual(body, want) {
				t.Errorf("body %#v", body)
			}
			if m.Properties.Priority != 7 || m.Properties.Expiration != "300000" {
				t.Errorf("props %+v", m.Properties)
			}
		}},
		{"amqp-5.2-rpc-result-success.json", func(t *testing.T, m *Message, body any) {
			want := map[string]any{"task_id": "dddddddd-0000-4000-8000-000000000001", "status": "SUCCESS",
				"result": int64(42), "traceback": nil, "children": []any{}}
			if !valuesEqual(body, want) {
				t.Errorf("body %#v", body)
			}
		}},
		{"amqp-5.2-rpc-result-failure.json", func(t *testing.T, m *Message, body any) {
			bm := body.(map[string]any)
			res := bm["result"].(map[string]any)
			if bm["status"] != "FAILURE" || res["exc_type"] != "MyError" ||
				!valuesEqual(res["exc_message"], []any{"rpcboom", int64(42)}) ||
				!strings.HasPrefix(bm["traceback"].(string), "Traceback (most recent call last):\n") {
				t.Errorf("body %#v", body)
			}
		}},
		{"amqp-5.2-event-task-multi.json", func(t *testing.T, m *Message, body any) {
			evs := body.([]any)
			if len(evs) != 2 {
				t.Fatalf("events %#v", body)
			}
			e0 := evs[0].(map[string]any)
			if e0["type"] != "task-received" || e0["clock"] != int64(18) || e0["timestamp"] != 1795680011.1328998 || e0["parent_id"] != nil {
				t.Errorf("event %#v", e0)
			}
		}},
		{"amqp-5.2-event-worker-heartbeat.json", func(t *testing.T, m *Message, body any) {
			bm := body.(map[string]any)
			if bm["freq"] != 2.0 || bm["processed"] != int64(2) || !valuesEqual(bm["loadavg"], []any{0.26, 0.32, 0.37}) {
				t.Errorf("body %#v", body)
			}
			if _, isFloat := bm["freq"].(float64); !isFloat {
				t.Errorf("2.0 did not stay float64")
			}
		}},
		{"amqp-5.2-pidbox-ping-reply.json", func(t *testing.T, m *Message, body any) {
			want := map[string]any{"wire1@vm": map[string]any{"ok": "pong"}}
			if !valuesEqual(body, want) || m.Headers["clock"] != int64(3) {
				t.Errorf("body %#v headers %#v", body, m.Headers)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			var cap amqpCapture
			if err := json.Unmarshal(readCapture(t, c.file), &cap); err != nil {
				t.Fatal(err)
			}
			hv, err := UnmarshalJSON(cap.ApplicationHeaders)
			if err != nil {
				t.Fatal(err)
			}
			m := &Message{
				ContentType:     cap.Properties.ContentType,
				ContentEncoding: cap.Properties.ContentEncoding,
				Headers:         hv.(map[string]any),
				Properties: Properties{
					CorrelationID: cap.Properties.CorrelationID,
					ReplyTo:       cap.Properties.ReplyTo,
					DeliveryMode:  cap.Properties.DeliveryMode,
					Priority:      cap.Properties.Priority,
					Expiration:    cap.Properties.Expiration,
					DeliveryInfo: DeliveryInfo{Exchange: cap.DeliveryInfo.Exchange,
						RoutingKey: cap.DeliveryInfo.RoutingKey, Redelivered: cap.DeliveryInfo.Redelivered},
				},
			}
			switch cap.BodyType {
			case "str":
				m.Body = []byte(cap.Body)
			case "bytes":
				if m.Body, err = pyliteral.Bytes(cap.Body); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("body_type %q", cap.BodyType)
			}
			body, err := reg.DecodeBody(m)
			if err != nil {
				t.Fatalf("DecodeBody: %v", err)
			}
			c.check(t, m, body)
		})
	}
}

// DecodeEnvelopeString decodes every capture exactly as DecodeEnvelope
// does, with its plain string values pointing into the input and the
// escaped ones (decoded through the decoder's scratch buffer, which the
// next escaped string reuses) copied.
func TestDecodeEnvelopeString(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(captureDir, "redis-*-task-*.json"))
	if len(files) == 0 {
		t.Fatal("no captures")
	}
	for _, p := range files {
		raw := readCapture(t, filepath.Base(p))
		m, err := DecodeEnvelope(raw)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		s := string(raw)
		ms, err := DecodeEnvelopeString(s)
		if err != nil {
			t.Fatalf("%s: DecodeEnvelopeString: %v", p, err)
		}
		if a, b := fmt.Sprintf("%#v", *m), fmt.Sprintf("%#v", *ms); a != b {
			t.Errorf("%s: DecodeEnvelopeString gave\n%s\nwant\n%s", p, b, a)
		}
		if id, ok := ms.Headers["id"].(string); ok && !within(id, s) {
			t.Errorf("%s: headers.id is a copy, not a view of the input", p)
		}
		if !within(ms.Properties.DeliveryTag, s) {
			t.Errorf("%s: delivery_tag is a copy, not a view of the input", p)
		}
	}
	env := `{"body": "", "headers": {"argsrepr": "(\"a\", 1)", "kwargsrepr": "{\"k\": \"\u00e9\"}", "origin": "gen1@h"},` +
		` "properties": {"delivery_tag": "t\"1", "correlation_id": "c-1", "reply_to": "r\/2", "x-extra": "v"}}`
	ms, err := DecodeEnvelopeString(env)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"argsrepr": `("a", 1)`, "kwargsrepr": `{"k": "é"}`, "origin": "gen1@h"}
	for k, v := range want {
		if got := ms.Headers[k]; got != v {
			t.Errorf("headers[%s] = %q, want %q", k, got, v)
		}
	}
	p := ms.Properties
	if p.DeliveryTag != `t"1` || p.CorrelationID != "c-1" || p.ReplyTo != "r/2" || p.Extra["x-extra"] != "v" {
		t.Errorf("properties = %+v", p)
	}
	if within(ms.Headers["argsrepr"].(string), env) || !within(ms.Headers["origin"].(string), env) {
		t.Error("an escaped value must be a copy and a plain one a view")
	}
}

// within reports whether s's bytes lie inside in's.
func within(s, in string) bool {
	if len(s) == 0 {
		return false
	}
	a, b := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(in)))
	return a >= b && a+uintptr(len(s)) <= b+uintptr(len(in))
}
