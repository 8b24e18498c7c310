package protocolv2

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/celerity-go/celerity/kombu"
)

// FuzzDecode feeds Redis envelope bytes through kombu.DecodeEnvelope and
// Decode. Decoded tasks must re-encode.
func FuzzDecode(f *testing.F) {
	for _, file := range captureFiles(f) {
		name := filepath.Base(file)
		if strings.HasPrefix(name, "amqp-") {
			m := loadMessage(f, name)
			env, err := kombu.AppendEnvelope(nil, m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(env)
			continue
		}
		f.Add(readCapture(f, name))
	}
	reg := newRegistry(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := kombu.DecodeEnvelope(data)
		if err != nil {
			return
		}
		Peek(m)
		task, err := Decode(m, reg)
		if err != nil {
			return
		}
		if task.ID == "" || task.Name == "" {
			t.Fatalf("decoded task without id/name: %+v", task)
		}
		ArgsRepr(task.Args)
		KwargsRepr(task.Kwargs)
		if _, err := Encode(task, EncodeOptions{JSONMode: kombu.JSONTyped}); err != nil {
			// Values kombu can decode but not encode are possible only for
			// non-finite or exotic values; report anything else.
			if !strings.Contains(err.Error(), "kombu:") {
				t.Fatalf("Encode: %v", err)
			}
		}
	})
}

// FuzzParseTime checks that ParseTime never panics and that what it
// accepts formats and parses back to the same instant.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2026-11-26T07:55:52.549680+00:00", "2026-11-26T07:55:52Z", "2026-11-26", "20261126T075552+0800",
		"2026-11-26 07:55:52,5-05:30", "2026-11-26T07", "2026-02-30", "x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseTime(s)
		if err != nil {
			return
		}
		out := FormatTime(tm)
		back, err := ParseTime(out)
		if err != nil {
			t.Fatalf("ParseTime(FormatTime(%q) = %q): %v", s, out, err)
		}
		if !back.Equal(tm) || IsNaive(back) != IsNaive(tm) {
			t.Fatalf("%q -> %v -> %q -> %v", s, tm, out, back)
		}
	})
}

// FuzzSignatureFromValue decodes JSON with kombu and converts it; accepted
// signatures must round-trip through Value.
func FuzzSignatureFromValue(f *testing.F) {
	f.Add([]byte(`{"task": "wiretasks.mul", "args": [10], "kwargs": {}, "options": {}, "subtask_type": null, "immutable": false}`))
	f.Add(readCapture(f, "redis-5.2-chain-with-group-embed.decoded.json"))
	f.Add([]byte(`{"task": "celery.group", "kwargs": {"tasks": [{"task": "a"}, {"task": "b"}]}, "subtask_type": "group"}`))
	f.Add([]byte(`{"task": "celery.chord", "kwargs": {"header": {"task": "g"}, "body": {"task": "b"}}, "options": {"link": [{"task": "l"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := kombu.UnmarshalJSON(data)
		if err != nil {
			return
		}
		s, err := SignatureFromValue(v)
		if err != nil {
			return
		}
		s.Tasks()
		s.Header()
		s.ChordBody()
		s.ChordOption()
		s.Links()
		s.ErrorLinks()
		s.GroupIndex()
		s.TaskID()
		PyRepr(s.Value())
		s2, err := SignatureFromValue(s.Value())
		if err != nil {
			t.Fatalf("Value() not accepted back: %v", err)
		}
		if s2.Task != s.Task || s2.Immutable != s.Immutable || s2.SubtaskType != s.SubtaskType || len(s2.Args) != len(s.Args) {
			t.Fatalf("round trip changed %+v -> %+v", s, s2)
		}
	})
}
