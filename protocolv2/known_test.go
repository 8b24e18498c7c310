package protocolv2

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/celerity-go/celerity/kombu"
)

// outcome is what DecodeKnown made of a message, in a comparable form.
type outcome struct {
	task    *Task
	unknown string // UnknownTaskError.Name
	kind    string // the error's type when it is not an UnknownTaskError
	msg     string
}

func decodeKnownOutcome(m *kombu.Message, reg *kombu.Registry, known func(string) bool) outcome {
	task, err := DecodeKnown(m, reg, known)
	if err == nil {
		return outcome{task: task}
	}
	var ute *UnknownTaskError
	var ite *InvalidTaskError
	var de *kombu.DecodeError
	var cd *kombu.ContentDisallowedError
	o := outcome{msg: err.Error()}
	switch {
	case errors.As(err, &ute):
		o.unknown, o.kind = ute.Name, "unknown"
	case errors.As(err, &ite):
		o.kind = "invalid"
	case errors.As(err, &cd):
		o.kind = "disallowed"
	case errors.As(err, &de):
		o.kind = "decode"
	case errors.Is(err, ErrUnknownMessage):
		o.kind = "unknown message"
	default:
		o.kind = fmt.Sprintf("%T", err)
	}
	return o
}

// agree decodes the envelope s eagerly and lazily with DecodeKnown and
// fails the test unless both decide alike: the same task, or errors of
// the same kind (and the same message when exact is set; with several
// faulty headers the map path reports whichever its iteration meets
// first).
func agree(t *testing.T, s string, reg *kombu.Registry, known func(string) bool, exact bool) outcome {
	t.Helper()
	eager, err := kombu.DecodeEnvelopeString(s)
	if err != nil {
		t.Fatalf("eager envelope: %v", err)
	}
	lazy, err := kombu.DecodeEnvelopeStringLazy(s)
	if err != nil {
		t.Fatalf("lazy envelope: %v", err)
	}
	a := decodeKnownOutcome(eager, reg, known)
	b := decodeKnownOutcome(lazy, reg, known)
	if (a.task == nil) != (b.task == nil) || a.kind != b.kind || a.unknown != b.unknown || (exact && a.msg != b.msg) {
		t.Fatalf("eager: %v %s %q\nlazy:  %v %s %q", a.task, a.kind, a.msg, b.task, b.kind, b.msg)
	}
	if a.task != nil && !sameTask(a.task, b.task) {
		t.Fatalf("tasks differ:\neager %#v\nlazy  %#v", a.task, b.task)
	}
	return a
}

// sameTask is reflect.DeepEqual that takes NaN for NaN.
func sameTask(a, b *Task) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	return strings.Contains(fmt.Sprintf("%v", a.Args)+fmt.Sprintf("%v", a.Kwargs), "NaN") &&
		fmt.Sprintf("%v|%v|%v", a.Args, a.Kwargs, a.ID) == fmt.Sprintf("%v|%v|%v", b.Args, b.Kwargs, b.ID)
}

func allKnown(string) bool { return true }

// TestDecodeKnownLazyAgreesOnCaptures: every Redis task capture (5.2
// and 5.6, v1, hybrid, chains, chords, msgpack, zlib) decodes to the same
// task from lazy headers as from the map, and to what Decode makes of it;
// with the task unknown, both report it by name.
func TestDecodeKnownLazyAgreesOnCaptures(t *testing.T) {
	reg := newRegistry(t)
	n := 0
	for _, file := range captureFiles(t) {
		name := filepath.Base(file)
		if !strings.HasPrefix(name, "redis-") {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			s := string(readCapture(t, name))
			o := agree(t, s, reg, allKnown, true)
			m, _ := kombu.DecodeEnvelopeString(s)
			want, err := Decode(m, reg)
			if err != nil || !reflect.DeepEqual(o.task, want) {
				t.Fatalf("DecodeKnown %#v, Decode %#v, %v", o.task, want, err)
			}
			if _, proto := Peek(m); proto == 2 {
				u := agree(t, s, reg, func(string) bool { return false }, true)
				if u.kind != "unknown" || u.unknown != want.Name {
					t.Fatalf("unknown task: %+v", u)
				}
			}
		})
	}
	if n < 10 {
		t.Fatalf("%d Redis captures", n)
	}
}

// TestDecodeKnownLazyAgreesOnOddHeaders: header faults, repeats and the
// order in which faults are reported are the map path's.
func TestDecodeKnownLazyAgreesOnOddHeaders(t *testing.T) {
	reg := newRegistry(t)
	const body = "W1sxXSwge30sIHt9XQ==" // [[1], {}, {}]
	env := func(headers, body string) string {
		return `{"body": "` + body + `", "content-type": "application/json", "content-encoding": "utf-8", ` +
			`"headers": ` + headers + `, "properties": {"body_encoding": "base64", "delivery_tag": "t"}}`
	}
	good := `"task": "a", "id": "i"`
	for _, c := range []struct {
		name, headers, body, kind string
	}{
		{"plain", `{` + good + `}`, body, ""},
		{"all fields", `{` + good + `, "lang": "py", "shadow": null, "group": "g", "group_index": 3, "root_id": "r",
			"parent_id": null, "eta": "2026-11-27T10:00:00+00:00", "expires": null, "retries": 2, "timelimit": [1.5, null],
			"argsrepr": "(1,)", "kwargsrepr": "{}", "origin": "o", "ignore_result": true, "replaced_task_nesting": 1,
			"stamped_headers": ["x"], "stamps": {"x": 1}, "compression": null, "redelivered": true, "custom": {"a": [1]}}`, body, ""},
		{"stamped null", `{` + good + `, "stamped_headers": null}`, body, ""},
		{"escaped strings", `{"task": "a\u00e9\"", "id": "i\\n", "origin": "\ud83d\ude00"}`, body, ""},
		{"empty id", `{"task": "a", "id": ""}`, body, "invalid"},
		{"id not a string", `{"task": "a", "id": 5}`, body, "invalid"},
		{"task not a string", `{"task": 5, "id": "i"}`, body, "invalid"},
		{"missing id", `{"task": "a"}`, body, "invalid"},
		{"bad eta", `{` + good + `, "eta": "soon"}`, body, "invalid"},
		{"bad timelimit", `{` + good + `, "timelimit": [1]}`, body, "invalid"},
		{"bad group_index", `{` + good + `, "group_index": "x"}`, body, "invalid"},
		{"repeated id, last good", `{"task": "a", "id": 5, "id": "i"}`, body, ""},
		{"repeated id, last bad", `{"task": "a", "id": "i", "id": 5}`, body, "invalid"},
		{"repeated task", `{"task": "b", "id": "i", "task": "a"}`, body, ""},
		{"repeated custom", `{` + good + `, "c": 1, "c": 2}`, body, ""},
		{"bad header and bad body", `{` + good + `, "eta": "soon"}`, "WzE=", "decode"}, // [1
		{"bad header and body not a list", `{` + good + `, "eta": "soon"}`, "MQ==", "invalid"},
		{"body not a list", `{` + good + `}`, "MQ==", "invalid"},
		{"hybrid", `{` + good + `}`, "eyJ0YXNrIjogImEiLCAiaWQiOiAiaSIsICJhcmdzIjogWzJdfQ==", ""}, // {"task": "a", "id": "i", "args": [2]}
		{"v1 body, no task header", `{"x": 1}`, "eyJ0YXNrIjogImEiLCAiaWQiOiAiaSIsICJhcmdzIjogWzJdfQ==", ""},
		{"no task anywhere", `{"x": 1}`, body, "unknown message"},
		{"empty headers", `{}`, body, "unknown message"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := agree(t, env(c.headers, c.body), reg, allKnown, true)
			if o.kind != c.kind {
				t.Fatalf("outcome %s (%s), want %q", o.kind, o.msg, c.kind)
			}
		})
	}
	// An unknown task wins over faults in the body and the other headers.
	o := agree(t, env(`{"task": "a", "id": 5, "eta": "soon"}`, "WzE="), reg, func(string) bool { return false }, true)
	if o.kind != "unknown" || o.unknown != "a" {
		t.Fatalf("unknown task with bad headers and body: %+v", o)
	}
	o = agree(t, env(`{"task": 5, "id": "i"}`, body), reg, func(n string) bool { return n != "" }, true)
	if o.kind != "unknown" || o.unknown != "" {
		t.Fatalf("non-string task header: %+v", o)
	}
}

// TestDecodeKnownLazyBuildsNoMap: the lazy path leaves Headers unbuilt
// for a message Celery publishes (the point of it), and the map path's
// fallback builds it.
func TestDecodeKnownLazyBuildsNoMap(t *testing.T) {
	reg := newRegistry(t)
	m, err := kombu.DecodeEnvelopeStringLazy(string(readCapture(t, "redis-5.6-task-basic.json")))
	if err != nil {
		t.Fatal(err)
	}
	task, err := DecodeKnown(m, reg, allKnown)
	if err != nil || m.Headers != nil || !task.Stamped || task.Stamps == nil {
		t.Fatalf("task %+v, err %v, headers built: %v", task, err, m.Headers != nil)
	}
	m, err = kombu.DecodeEnvelopeStringLazy(string(readCapture(t, "redis-5.2-task-protocol-v1.json")))
	if err != nil {
		t.Fatal(err)
	}
	if task, err := DecodeKnown(m, reg, allKnown); err != nil || task.Protocol != 1 || m.Headers == nil {
		t.Fatalf("v1: task %+v, err %v", task, err)
	}
}

func FuzzDecodeKnownLazy(f *testing.F) {
	for _, file := range captureFiles(f) {
		if name := filepath.Base(file); strings.HasPrefix(name, "redis-") {
			f.Add(readCapture(f, name), false)
		}
	}
	f.Add([]byte(`{"body": "W1sxXSwge30sIHt9XQ==", "content-type": "application/json", "headers": {"task": "a", "id": 5, "id": "i"}, "properties": {"body_encoding": "base64"}}`), true)
	reg := newRegistry(f)
	f.Fuzz(func(t *testing.T, data []byte, unknown bool) {
		s := string(data)
		eager, err := kombu.DecodeEnvelopeString(s)
		lazy, errl := kombu.DecodeEnvelopeStringLazy(s)
		if (err == nil) != (errl == nil) {
			t.Fatalf("envelope: eager %v, lazy %v", err, errl)
		}
		if err != nil {
			return
		}
		known := allKnown
		if unknown {
			known = func(n string) bool { return len(n)%2 == 0 }
		}
		a := decodeKnownOutcome(eager, reg, known)
		b := decodeKnownOutcome(lazy, reg, known)
		if (a.task == nil) != (b.task == nil) || a.kind != b.kind || a.unknown != b.unknown {
			t.Fatalf("eager: %s %q\nlazy:  %s %q", a.kind, a.msg, b.kind, b.msg)
		}
		if a.task != nil && !sameTask(a.task, b.task) && !hasNaN(a.task) {
			t.Fatalf("tasks differ:\neager %#v\nlazy  %#v", a.task, b.task)
		}
	})
}

// hasNaN reports a NaN among the task's header floats, which DeepEqual
// never finds equal.
func hasNaN(t *Task) bool {
	for _, p := range []*float64{t.TimeLimit.Hard, t.TimeLimit.Soft} {
		if p != nil && math.IsNaN(*p) {
			return true
		}
	}
	return strings.Contains(fmt.Sprintf("%v", t.Extra), "NaN")
}

// TestHeaderBitsCoverNamedHeaders: every header setHeader handles by
// name (not into Extra) has a bit in headerBit, and no other does, for
// every header name the captures carry, so that a repeat of a named
// header is always noticed.
func TestHeaderBitsCoverNamedHeaders(t *testing.T) {
	names := map[string]bool{}
	for _, file := range captureFiles(t) {
		m := loadMessage(t, filepath.Base(file))
		for k := range m.Headers {
			names[k] = true
		}
	}
	if len(names) < 20 {
		t.Fatalf("only %d header names in the captures", len(names))
	}
	for k := range names {
		var task Task
		_ = task.setHeader(k, nil)
		named := len(task.Extra) == 0
		if named != (headerBit(k) != 0) {
			t.Errorf("header %q: handled by name %v, has a bit %v", k, named, headerBit(k) != 0)
		}
	}
}
