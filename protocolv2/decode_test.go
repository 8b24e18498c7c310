package protocolv2

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/celerity-go/celerity/kombu"
)

func jsonMsg(t testing.TB, headers map[string]any, body string) *kombu.Message {
	return &kombu.Message{Body: []byte(body), ContentType: "application/json", ContentEncoding: "utf-8", Headers: headers}
}

func v2h(extra map[string]any) map[string]any {
	h := map[string]any{"task": "t.add", "id": "id-1"}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

func TestDecodeErrors(t *testing.T) {
	const okBody = `[[1], {}, {}]`
	cases := []struct {
		name    string
		m       *kombu.Message
		field   string // InvalidTaskError.Field, "" = ErrUnknownMessage
		unknown bool
	}{
		{"no headers, list body", jsonMsg(t, nil, okBody), "", true},
		{"no task header, dict body without task", jsonMsg(t, map[string]any{}, `{"id": "x"}`), "", true},
		{"no task header, string body", jsonMsg(t, map[string]any{"x": 1}, `"hello"`), "", true},
		{"missing id", jsonMsg(t, map[string]any{"task": "t"}, okBody), "id", false},
		{"id not a string", jsonMsg(t, map[string]any{"task": "t", "id": int64(1)}, okBody), "id", false},
		{"task null", jsonMsg(t, map[string]any{"task": nil, "id": "i"}, okBody), "task", false},
		{"kwargs list", jsonMsg(t, v2h(nil), `[[], [], {}]`), "kwargs", false},
		{"kwargs null", jsonMsg(t, v2h(nil), `[[], null, {}]`), "kwargs", false},
		{"args dict", jsonMsg(t, v2h(nil), `[{}, {}, {}]`), "args", false},
		{"body not a list", jsonMsg(t, v2h(nil), `"x"`), "body", false},
		{"body too short", jsonMsg(t, v2h(nil), `[[]]`), "body", false},
		{"body too long", jsonMsg(t, v2h(nil), `[[], {}, {}, 1]`), "body", false},
		{"embed a list", jsonMsg(t, v2h(nil), `[[], {}, []]`), "embed", false},
		{"callbacks not a list", jsonMsg(t, v2h(nil), `[[], {}, {"callbacks": 3}]`), "callbacks", false},
		{"chain item not a dict", jsonMsg(t, v2h(nil), `[[], {}, {"chain": [1]}]`), "chain", false},
		{"chord args not a list", jsonMsg(t, v2h(nil), `[[], {}, {"chord": {"task": "x", "args": 1}}]`), "chord", false},
		{"bad eta", jsonMsg(t, v2h(map[string]any{"eta": "tomorrow"}), okBody), "eta", false},
		{"bad expires type", jsonMsg(t, v2h(map[string]any{"expires": int64(5)}), okBody), "expires", false},
		{"bad timelimit", jsonMsg(t, v2h(map[string]any{"timelimit": []any{"a", nil}}), okBody), "timelimit", false},
		{"timelimit wrong length", jsonMsg(t, v2h(map[string]any{"timelimit": []any{int64(1)}}), okBody), "timelimit", false},
		{"group_index string", jsonMsg(t, v2h(map[string]any{"group_index": "1"}), okBody), "group_index", false},
		{"retries float", jsonMsg(t, v2h(map[string]any{"retries": 1.5}), okBody), "retries", false},
		{"stamps list", jsonMsg(t, v2h(map[string]any{"stamps": []any{}}), okBody), "stamps", false},
		{"v1 kwargs list", jsonMsg(t, map[string]any{}, `{"task": "t", "id": "i", "kwargs": []}`), "kwargs", false},
		{"v1 kwargs null", jsonMsg(t, map[string]any{}, `{"task": "t", "id": "i", "kwargs": null}`), "kwargs", false},
		{"v1 missing id", jsonMsg(t, map[string]any{}, `{"task": "t"}`), "id", false},
		{"v1 bad utc", jsonMsg(t, map[string]any{}, `{"task": "t", "id": "i", "utc": []}`), "utc", false},
	}
	reg := newRegistry(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			task, err := Decode(c.m, reg)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", task)
			}
			if c.unknown {
				if !errors.Is(err, ErrUnknownMessage) {
					t.Fatalf("err = %v, want ErrUnknownMessage", err)
				}
				return
			}
			var it *InvalidTaskError
			if !errors.As(err, &it) {
				t.Fatalf("err = %v (%T), want *InvalidTaskError", err, err)
			}
			eq(t, "Field", it.Field, c.field)
			if !strings.HasPrefix(err.Error(), "protocolv2: invalid task: "+c.field) {
				t.Errorf("message %q", err.Error())
			}
		})
	}
}

func TestDecodeKombuErrorsPassThrough(t *testing.T) {
	reg := newRegistry(t)
	_, err := Decode(jsonMsg(t, v2h(nil), `[[1], {}`), reg)
	var de *kombu.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *kombu.DecodeError", err)
	}
	m := jsonMsg(t, v2h(nil), "x")
	m.ContentType = "application/x-python-serialize"
	_, err = Decode(m, reg)
	var cd *kombu.ContentDisallowedError
	if !errors.As(err, &cd) {
		t.Fatalf("err = %v, want *kombu.ContentDisallowedError", err)
	}
	if _, err := Decode(nil, reg); err == nil {
		t.Error("Decode(nil) succeeded")
	}
}

func TestDecodeLenientForms(t *testing.T) {
	reg := newRegistry(t)
	// Two-element body, null embed, partial embed: all valid.
	for _, body := range []string{`[[1, 2], {"a": 1}]`, `[[1, 2], {"a": 1}, null]`, `[[1, 2], {"a": 1}, {"chain": null}]`} {
		task, err := Decode(jsonMsg(t, v2h(map[string]any{
			"eta": "2026-11-26T07:55:52", "timelimit": []any{nil, 2.5}, "group_index": int64(2),
			"stamped_headers": []any{"s"}, "x-trace": map[string]any{"k": "v"},
			"compression": nil, "redelivered": true, "ignore_result": int64(1),
		}), body), reg)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		eq(t, "Args", task.Args, []any{int64(1), int64(2)})
		eq(t, "Kwargs", task.Kwargs, map[string]any{"a": int64(1)})
		eq(t, "IsNaive(ETA)", IsNaive(task.ETA), true)
		eq(t, "ETA", FormatTime(task.ETA), "2026-11-26T07:55:52")
		eq(t, "TimeLimit.Hard", task.TimeLimit.Hard, (*float64)(nil))
		eq(t, "TimeLimit.Soft", *task.TimeLimit.Soft, 2.5)
		eq(t, "GroupIndex", task.GroupIndex, intp(2))
		eq(t, "StampedHeaders", task.StampedHeaders, []string{"s"})
		eq(t, "IgnoreResult", task.IgnoreResult, true)
		eq(t, "Extra", task.Extra, map[string]any{"x-trace": map[string]any{"k": "v"}})
	}
}

func TestDecodeV1Variants(t *testing.T) {
	reg := newRegistry(t)
	// Old producers send only taskset; utc false; message headers override
	// body fields (hybrid_to_proto2); unknown body keys land in Extra.
	m := jsonMsg(t, map[string]any{"retries": int64(4), "x-h": "1"},
		`{"task": "t.v1", "id": "i1", "taskset": "ts", "utc": false, "eta": "2026-01-02T03:04:05",
		  "retries": 1, "errbacks": [{"task": "eb"}], "chord": {"task": "cb"}, "meth": "m"}`)
	task, err := Decode(m, reg)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Protocol", task.Protocol, 1)
	eq(t, "Group", task.Group, "ts")
	eq(t, "UTC", task.UTC, false)
	eq(t, "IsNaive(ETA)", IsNaive(task.ETA), true)
	eq(t, "Retries (header wins)", task.Retries, 4)
	eq(t, "Args (absent)", task.Args, []any{})
	eq(t, "Kwargs (absent)", task.Kwargs, map[string]any{})
	eq(t, "Errbacks", task.Errbacks, []Signature{{Task: "eb"}})
	eq(t, "Chord", task.Chord, &Signature{Task: "cb"})
	eq(t, "Extra", task.Extra, map[string]any{"meth": "m", "x-h": "1"})

	// Hybrid: v2 headers with a v1 body dict.
	h := jsonMsg(t, v2h(map[string]any{"retries": int64(2)}), `{"args": [1], "kwargs": {"k": 2}, "callbacks": [{"task": "c"}]}`)
	pname, proto := Peek(h)
	eq(t, "Peek", []any{pname, proto}, []any{"t.add", 2})
	task, err = Decode(h, reg)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "hybrid Protocol", task.Protocol, 1)
	eq(t, "hybrid Name", task.Name, "t.add")
	eq(t, "hybrid Args", task.Args, []any{int64(1)})
	eq(t, "hybrid Kwargs", task.Kwargs, map[string]any{"k": int64(2)})
	eq(t, "hybrid Retries", task.Retries, 2)
	eq(t, "hybrid Callbacks", task.Callbacks, []Signature{{Task: "c"}})
}

func TestSignatureFromValue(t *testing.T) {
	v := map[string]any{
		"task": "t", "args": []any{int64(1)}, "kwargs": map[string]any{"a": "b"},
		"options": map[string]any{"task_id": "tid", "group_id": "g", "group_index": int64(2), "priority": int64(5),
			"queue": "q", "root_id": "r", "parent_id": "p", "reply_to": "rt",
			"link": map[string]any{"task": "l"}, "link_error": []any{map[string]any{"task": "e1"}, map[string]any{"task": "e2"}}},
		"subtask_type": nil, "immutable": true, "chord_size": int64(3),
	}
	s, err := SignatureFromValue(v)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Task", s.Task, "t")
	eq(t, "Immutable", s.Immutable, true)
	eq(t, "Extra", s.Extra, map[string]any{"chord_size": int64(3)})
	eq(t, "TaskID", s.TaskID(), "tid")
	eq(t, "GroupID", s.GroupID(), "g")
	eq(t, "Queue", s.Queue(), "q")
	eq(t, "RootID", s.RootID(), "r")
	eq(t, "ParentID", s.ParentID(), "p")
	eq(t, "ReplyTo", s.ReplyTo(), "rt")
	gi, ok := s.GroupIndex()
	eq(t, "GroupIndex", []any{gi, ok}, []any{2, true})
	pr, ok := s.Priority()
	eq(t, "Priority", []any{pr, ok}, []any{5, true})
	links, err := s.Links()
	eq(t, "Links", []any{links, err}, []any{[]Signature{{Task: "l"}}, nil})
	el, err := s.ErrorLinks()
	eq(t, "ErrorLinks", []any{el, err}, []any{[]Signature{{Task: "e1"}, {Task: "e2"}}, nil})
	eq(t, "Value round trip", s.Value(), v)
	if _, err := s.Tasks(); !errors.Is(err, ErrNotSignature) {
		t.Errorf("Tasks on a plain signature: %v", err)
	}
	for _, bad := range []any{nil, "x", []any{}, map[string]any{"task": int64(1)},
		map[string]any{"kwargs": "x"}, map[string]any{"options": []any{}}, map[string]any{"immutable": []any{}},
		map[string]any{"subtask_type": int64(1)}} {
		if _, err := SignatureFromValue(bad); !errors.Is(err, ErrNotSignature) {
			t.Errorf("SignatureFromValue(%#v) err = %v", bad, err)
		}
	}
	empty := Signature{}.Value()
	eq(t, "zero Value", empty, map[string]any{"task": nil, "args": []any{}, "kwargs": map[string]any{},
		"options": map[string]any{}, "subtask_type": nil, "immutable": false})
}

func captureFiles(tb testing.TB) []string {
	files, _ := filepath.Glob(filepath.Join(capturesDir, "*-5.?-task-*.json"))
	return files
}
