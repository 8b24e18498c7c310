package kombu

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// checkLazyAgrees decodes s lazily and checks it against eager, the
// message DecodeEnvelopeString made of it: the same message once the
// headers are built, the same headers through RangeHeaders, read with
// String and Value or not read at all, and the same body.
func checkLazyAgrees(t *testing.T, s string, eager *Message) {
	t.Helper()
	lazy, err := DecodeEnvelopeStringLazy(s)
	if err != nil {
		t.Fatalf("lazy: %v", err)
	}
	if lazy.Headers != nil {
		t.Fatalf("lazy decode built Headers")
	}
	if (lazy.HeadersJSON != "") != (eager.Headers != nil) {
		t.Fatalf("HeadersJSON %q for headers %v", lazy.HeadersJSON, eager.Headers)
	}
	// All headers through RangeHeaders, strings read with String.
	got := map[string]any{}
	err = lazy.RangeHeaders(func(k string, v *HeaderValue) error {
		if s, ok, err := v.String(); err != nil || ok {
			got[k] = s
			return err
		}
		val, err := v.Value()
		got[k] = val
		return err
	})
	if err != nil {
		t.Fatalf("RangeHeaders: %v", err)
	}
	if eager.Headers == nil {
		if len(got) != 0 {
			t.Fatalf("RangeHeaders found %v in no headers", got)
		}
	} else if a, b := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", eager.Headers); a != b {
		t.Fatalf("RangeHeaders read\n%s\nwant\n%s", a, b)
	}
	// Skipping every value still walks the whole text.
	n := 0
	if err := lazy.RangeHeaders(func(string, *HeaderValue) error { n++; return nil }); err != nil {
		t.Fatalf("RangeHeaders, values unread: %v", err)
	}
	// The body as DecodeBody reads it (compression from the headers).
	reg, _ := NewRegistry([]string{"json", "msgpack", "yaml", "application/data", "application/text"})
	be, erre := reg.DecodeBody(eager)
	bl, errl := reg.DecodeBody(lazy)
	if (erre == nil) != (errl == nil) || fmt.Sprintf("%#v", be) != fmt.Sprintf("%#v", bl) {
		t.Fatalf("DecodeBody lazy %#v, %v; eager %#v, %v", bl, errl, be, erre)
	}
	if err := lazy.DecodeHeaders(); err != nil {
		t.Fatalf("DecodeHeaders: %v", err)
	}
	lazy.HeadersJSON = ""
	lazy.compression, lazy.hasCompression, lazy.scanned = nil, false, false
	if a, b := fmt.Sprintf("%#v", *lazy), fmt.Sprintf("%#v", *eager); a != b {
		t.Fatalf("lazy message after DecodeHeaders\n%s\nwant\n%s", a, b)
	}
}

// TestLazyEnvelopeAgreesOnCaptures: every captured Redis task envelope
// (Celery 5.2 and 5.6, every body encoding and compression captured)
// decodes lazily to what the eager decoder makes of it.
func TestLazyEnvelopeAgreesOnCaptures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(captureDir, "redis-*.json"))
	if len(files) < 10 {
		t.Fatalf("found %d captures", len(files))
	}
	for _, p := range files {
		name := filepath.Base(p)
		data := string(readCapture(t, name))
		eager, err := DecodeEnvelopeString(data)
		if err != nil {
			continue // not an envelope (a decoded dump)
		}
		t.Run(name, func(t *testing.T) { checkLazyAgrees(t, data, eager) })
	}
}

func TestLazyEnvelopeCases(t *testing.T) {
	base := `{"body": "W1tdLCB7fSwge31d", "content-type": "application/json", "content-encoding": "utf-8", ` +
		`"properties": {"body_encoding": "base64", "delivery_tag": "t1"}, "headers": %s}`
	for _, c := range []struct {
		name, headers string
		bad           bool
	}{
		{"null headers", `null`, false},
		{"empty", `{}`, false},
		{"escapes", `{"task": "a\"b\\u00e9\n", "id": "x", "k\u00e9y": ["\ud83d\ude00", {"n": null}]}`, false},
		{"duplicate key", `{"id": "a", "id": "b"}`, false},
		{"numbers", `{"retries": 1e400, "big": 123456789012345678901234567890, "f": -0.5}`, false},
		{"compression", `{"compression": "application/x-gzip"}`, false},
		{"compression null", `{"compression": null}`, false},
		{"not an object", `[1]`, true},
		{"bad value", `{"id": tru}`, true},
		{"bad string", `{"id": "\x01"}`, true},
		{"unterminated", `{"id": "a"`, true},
		{"bad escape", `{"id": "\q"}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := fmt.Sprintf(base, c.headers)
			eager, err := DecodeEnvelopeString(data)
			_, errl := DecodeEnvelopeStringLazy(data)
			if (err != nil) != c.bad || (errl != nil) != c.bad {
				t.Fatalf("eager error %v, lazy error %v, want error %v", err, errl, c.bad)
			}
			if !c.bad && !strings.Contains(c.name, "compression") {
				checkLazyAgrees(t, data, eager)
			}
		})
	}
}

// TestRangeHeadersDuplicateKey: from JSON text a key that appears twice
// is passed twice, in order; the map keeps the last.
func TestRangeHeadersDuplicateKey(t *testing.T) {
	m := &Message{HeadersJSON: `{"id": "a", "x": 1, "id": "b"}`}
	var ids []string
	if err := m.RangeHeaders(func(k string, v *HeaderValue) error {
		if k == "id" {
			s, _, err := v.String()
			ids = append(ids, s)
			return err
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []string{"a", "b"}) {
		t.Errorf("ids %v", ids)
	}
	if err := m.DecodeHeaders(); err != nil || m.Headers["id"] != "b" {
		t.Errorf("DecodeHeaders: %v, %v", m.Headers, err)
	}
}

// TestRangeHeadersErrors: fn's error comes back as it is; a fault in the
// text as a *DecodeError; a hand-made message's compression header is
// found in its text.
func TestRangeHeadersErrors(t *testing.T) {
	stop := fmt.Errorf("stop")
	m := &Message{HeadersJSON: `{"a": 1, "b": 2}`}
	if err := m.RangeHeaders(func(string, *HeaderValue) error { return stop }); err != stop {
		t.Errorf("fn's error: got %v", err)
	}
	bad := &Message{HeadersJSON: `{"a": 1,}`}
	err := bad.RangeHeaders(func(string, *HeaderValue) error { return nil })
	if _, ok := err.(*DecodeError); !ok {
		t.Errorf("bad text: got %T %v, want *DecodeError", err, err)
	}
	if err := bad.DecodeHeaders(); err == nil {
		t.Error("DecodeHeaders accepted bad text")
	}
	trailing := &Message{HeadersJSON: `{"a": 1} x`}
	if err := trailing.RangeHeaders(func(string, *HeaderValue) error { return nil }); err == nil {
		t.Error("RangeHeaders accepted trailing data")
	}
	header, gz, err := Compress("gzip", []byte(`[[], {}, {}]`))
	if err != nil {
		t.Fatal(err)
	}
	hand := &Message{Body: gz, ContentType: "application/json", ContentEncoding: "utf-8",
		HeadersJSON: `{"task": "t", "compression": "` + header + `"}`}
	reg, _ := NewRegistry(nil)
	if v, err := reg.DecodeBody(hand); err != nil || fmt.Sprint(v) != "[[] map[] map[]]" {
		t.Errorf("DecodeBody of a hand-made lazy message: %v, %v", v, err)
	}
}
