package redistransport

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/celerity-go/celerity/transports"
)

func TestAppendPyString(t *testing.T) {
	tests := map[string]string{
		"wire_q":      `"wire_q"`,
		"a/b":         `"a/b"`,
		"q\"\\\n\x01": `"q\"\\\n\u0001"`,
		"é€":          `"\u00e9\u20ac"`,
		"😀":           `"\ud83d\ude00"`,
	}
	for in, want := range tests {
		if got := string(appendPyString(nil, in)); got != want {
			t.Errorf("appendPyString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestMarkRedelivered(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"headers": {}, "properties": {"delivery_info": {"exchange": "", "routing_key": "q"}, "priority": 0}}`,
			`{"headers": {"redelivered": true}, "properties": {"delivery_info": {"exchange": "", "routing_key": "q", "redelivered": true}, "priority": 0}}`},
		{`{"headers": {"redelivered": false, "x": [1, 2]}, "properties": {}}`,
			`{"headers": {"redelivered": true, "x": [1, 2]}, "properties": {}}`},
		{`{"body": "e30="}`, `{"body": "e30="}`},
		{`{"headers": null, "properties": {"delivery_info": {}}}`, `{"headers": null, "properties": {"delivery_info": {}}}`},
	}
	for _, tc := range tests {
		got, err := markRedelivered([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("markRedelivered(%s) = %s, %v\nwant %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := markRedelivered([]byte(`[1]`)); err == nil {
		t.Error("no error for a non-object")
	}
}

func TestPriorityStep(t *testing.T) {
	ks := newKeyspace(Options{}.withDefaults(), 0)
	for p, want := range map[int]int{0: 0, 1: 0, 2: 0, 3: 3, 5: 3, 6: 6, 8: 6, 9: 9} {
		if got := ks.step(p); got != want {
			t.Errorf("step(%d) = %d, want %d", p, got, want)
		}
	}
	if got := envelopePriority([]byte(`{"properties": {"priority": "7"}}`)); got != 7 {
		t.Errorf("string priority -> %d", got)
	}
	if got := envelopePriority([]byte(`{"properties": {"priority": 42.5}}`)); got != 9 {
		t.Errorf("clamped priority -> %d", got)
	}
	if got := envelopePriority([]byte(`{"properties": {"priority": null}}`)); got != 0 {
		t.Errorf("null priority -> %d", got)
	}
}

// TestRecordSlowPath covers envelopes the Lua fast path does not take
// (escaped routing key, properties not last): cjson must record an entry
// Python reads identically.
func TestRecordSlowPath(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	p := tr.ks.prefix
	env := `{"properties": {"delivery_tag": "slow-1", "delivery_info": {"exchange": "", "routing_key": "sl\u00e9/q"}, "priority": 0, "body_encoding": "base64"}, "body": "eA==", "content-type": "text/plain", "content-encoding": "utf-8", "headers": {}}`
	q := "slé/q"
	if err := tr.Declare(ctx, transports.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	if err := tr.client.LPush(ctx, p+q, env).Err(); err != nil {
		t.Fatal(err)
	}
	c := consumeT(t, tr, q)
	ds, err := c.Fetch(ctx, 5)
	if err != nil || len(ds) != 1 || ds[0].Tag != "slow-1" || string(ds[0].Message.Body) != "x" {
		t.Fatalf("Fetch = %v, %v", ds, err)
	}
	v, err := tr.client.HGet(ctx, p+"unacked", "slow-1").Result()
	if err != nil {
		t.Fatal(err)
	}
	gotEnv, ex, rk, err := parseUnackedValue([]byte(v))
	if err != nil || string(gotEnv) != env || ex != "" || rk != q {
		t.Fatalf("unacked value %s -> %s %q %q %v", v, gotEnv, ex, rk, err)
	}
	var a, b any
	_ = json.Unmarshal(gotEnv, &a)
	_ = json.Unmarshal([]byte(env), &b)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("envelope changed")
	}
	if err := c.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
}

func FuzzMarkRedelivered(f *testing.F) {
	f.Add([]byte(`{"body": "eyJoZWxsbyI6ICJ3b3JsZCJ9", "content-encoding": "utf-8", "content-type": "application/json", "headers": {}, "properties": {"delivery_mode": 2, "delivery_info": {"exchange": "wire_vis", "routing_key": "wire_vis"}, "priority": 4, "body_encoding": "base64", "delivery_tag": "0980776f-28d8-4eed-8097-719d311bcea7"}}`))
	f.Add([]byte(`{"headers": null}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := markRedelivered(data)
		if err == nil && !json.Valid(out) && json.Valid(data) {
			t.Fatalf("invalid JSON out of valid input: %s", out)
		}
		_ = envelopePriority(data)
	})
}

func FuzzParseUnackedValue(f *testing.F) {
	f.Add([]byte(`[{"body": "e30="}, "wire_vis", "wire_vis"]`))
	f.Add([]byte(`[{}, null, 1]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, _, _, err := parseUnackedValue(data)
		if err == nil && !json.Valid(env) {
			t.Fatalf("invalid envelope %q", env)
		}
	})
}

// TestRecordFastPathWindow checks the fast path's 512-byte tail window:
// fields inside it, a decoy delivery_info earlier in the payload, and a
// delivery tag or delivery_info that starts before the window (full-scan
// fallback) all record the value kombu writes, byte for byte.
func TestRecordFastPathWindow(t *testing.T) {
	long := strings.Repeat("t", 600)
	pad := strings.Repeat("p", 2000)
	cases := []struct {
		name, tag, rk, headers string
	}{
		{"short", "fw-short", "fwq", `{}`},
		{"big headers", "fw-big", "fwq", `{"argsrepr": "` + pad + `"}`},
		{"decoy delivery_info in headers", "fw-decoy", "fwq", `{"delivery_info": {"exchange": "evil", "routing_key": "evil"}}`},
		{"far decoy delivery_info in headers", "fw-decoy2", "fwq", `{"delivery_info": {"exchange": "evil", "routing_key": "evil"}, "pad": "` + pad + `"}`},
		{"tag longer than the window", "fw-" + long, "fwq", `{"argsrepr": "` + pad + `"}`},
	}
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	p := tr.ks.prefix
	q := "fwq"
	if err := tr.Declare(ctx, transports.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	c := consumeT(t, tr, q)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := `{"body": "eA==", "content-encoding": "utf-8", "content-type": "text/plain", "headers": ` + tc.headers +
				`, "properties": {"correlation_id": "c", "reply_to": "r", "delivery_mode": 2, "delivery_info": {"exchange": "ex", "routing_key": "` + tc.rk +
				`"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "` + tc.tag + `"}}`
			if err := tr.client.LPush(ctx, p+q, env).Err(); err != nil {
				t.Fatal(err)
			}
			ds, err := c.Fetch(ctx, 5)
			if err != nil || len(ds) != 1 || ds[0].Tag != tc.tag {
				t.Fatalf("Fetch = %v, %v", ds, err)
			}
			v, err := tr.client.HGet(ctx, p+"unacked", tc.tag).Result()
			if err != nil {
				t.Fatal(err)
			}
			if want := "[" + env + `, "ex", "` + tc.rk + `"]`; v != want {
				t.Fatalf("unacked value\n got %s\nwant %s", v, want)
			}
			if err := c.Ack(ctx, ds...); err != nil {
				t.Fatal(err)
			}
		})
	}
}
