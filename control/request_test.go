package control

import (
	"os"
	"strings"
	"testing"

	"github.com/celerity-go/celerity/kombu"
)

// captureRequest returns the envelope of the captured Celery 5.2 ping.
func captureRequest(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/captures/redis-5.2-pidbox-ping-request.txt")
	if err != nil {
		t.Fatal(err)
	}
	_, env, _ := strings.Cut(string(b), "\n")
	return []byte(strings.TrimSpace(env))
}

func TestDecodeRequestCapture(t *testing.T) {
	m, err := kombu.DecodeEnvelope(captureRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := kombu.NewRegistry(nil)
	r, err := DecodeRequest(m, reg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "ping" || len(r.Arguments) != 0 || r.Destination != nil || r.Pattern != "" || r.Matcher != "" {
		t.Errorf("request %+v", r)
	}
	if r.Ticket != "449c55c5-dab9-475d-b858-bd3c4eec403c" || r.Clock != 2 {
		t.Errorf("ticket %q clock %d", r.Ticket, r.Clock)
	}
	if r.ReplyTo == nil || r.ReplyTo.Exchange != "reply.celery.pidbox" || r.ReplyTo.RoutingKey != "7c5f5144-8fec-3276-8bba-0a4648607729" {
		t.Errorf("reply_to %+v", r.ReplyTo)
	}
	if !r.For("anyone@host") {
		t.Error("broadcast not for every node")
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	reg, _ := kombu.NewRegistry(nil)
	for _, tc := range []struct{ name, ct, body string }{
		{"not a dict", "application/json", `[1]`},
		{"no method", "application/json", `{"arguments": {}}`},
		{"bad arguments", "application/json", `{"method": "ping", "arguments": [1]}`},
		{"bad destination", "application/json", `{"method": "ping", "destination": 5}`},
		{"bad json", "application/json", `{"method"`},
		{"refused content", "application/x-yaml", `method: ping`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeRequest(&kombu.Message{Body: []byte(tc.body), ContentType: tc.ct, ContentEncoding: "utf-8"}, reg)
			if err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestFor(t *testing.T) {
	const me = "w1@host.example"
	for _, tc := range []struct {
		name string
		body string
		want bool
	}{
		{"broadcast", `{"method": "ping"}`, true},
		{"destination hit", `{"method": "ping", "destination": ["x@y", "w1@host.example"]}`, true},
		{"destination miss", `{"method": "ping", "destination": ["w1@host"]}`, false},
		{"empty destination is broadcast", `{"method": "ping", "destination": []}`, true},
		{"string destination substring", `{"method": "ping", "destination": "a w1@host.example b"}`, true},
		{"destination wins over pattern", `{"method": "ping", "destination": ["x@y"], "pattern": "*", "matcher": "glob"}`, false},
		{"glob", `{"method": "ping", "pattern": "w1@*", "matcher": "glob"}`, true},
		{"glob anchored", `{"method": "ping", "pattern": "w1", "matcher": "glob"}`, false},
		{"glob set", `{"method": "ping", "pattern": "w[0-9]@host.exampl?", "matcher": "glob"}`, true},
		{"glob negated set", `{"method": "ping", "pattern": "w[!1]@*", "matcher": "glob"}`, false},
		{"glob dot literal", `{"method": "ping", "pattern": "w1@host?example", "matcher": "glob"}`, true},
		{"pcre prefix", `{"method": "ping", "pattern": "w\\d@", "matcher": "pcre"}`, true},
		{"pcre anchored at start", `{"method": "ping", "pattern": "host", "matcher": "pcre"}`, false},
		{"unknown matcher", `{"method": "ping", "pattern": "w1@*", "matcher": "regex"}`, false},
		{"pattern without matcher is broadcast", `{"method": "ping", "pattern": "zzz"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, _ := kombu.NewRegistry(nil)
			r, err := DecodeRequest(&kombu.Message{Body: []byte(tc.body), ContentType: "application/json", ContentEncoding: "utf-8"}, reg)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.For(me); got != tc.want {
				t.Errorf("For(%q) = %v, want %v", me, got, tc.want)
			}
		})
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add(captureRequest(f))
	f.Add([]byte(`{"body": "e30=", "content-type": "application/json", "content-encoding": "utf-8", "headers": {"clock": 1.5}, "properties": {"body_encoding": "base64"}}`))
	f.Add([]byte(`{"body": "eyJtZXRob2QiOiAicGluZyIsICJkZXN0aW5hdGlvbiI6ICJ4In0=", "content-type": "application/json", "content-encoding": "utf-8", "headers": {}, "properties": {"body_encoding": "base64"}}`))
	reg, _ := kombu.NewRegistry([]string{"json", "msgpack", "yaml"})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := kombu.DecodeEnvelope(data)
		if err != nil {
			return
		}
		r, err := DecodeRequest(m, reg)
		if err != nil {
			return
		}
		if r.Method == "" || r.Arguments == nil {
			t.Fatalf("accepted request without method/arguments: %+v", r)
		}
		r.For("w@h")
		r.Pattern, r.Matcher = "[", "glob"
		r.For("w@h")
	})
}
