package protocolv2

import (
	"errors"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/kombu"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// roundTrip encodes task, passes it through a Redis envelope and decodes it
// again; the result must equal task (v1 tasks come back as v2).
func roundTrip(t *testing.T, what string, task *Task) {
	t.Helper()
	opts := []EncodeOptions{{JSONMode: kombu.JSONTyped, RoutingKey: "q"}}
	if !hasSpecial(task.Args) && !hasSpecial(task.Kwargs) {
		// msgpack has no datetime/decimal/uuid/bigint forms (kombu and
		// Python's msgpack refuse or stringify them).
		opts = append(opts, EncodeOptions{Serializer: "msgpack", Compression: "zlib", RoutingKey: "q"})
	}
	for _, opt := range opts {
		m, err := Encode(task, opt)
		if err != nil {
			t.Errorf("%s: Encode(%+v): %v", what, opt, err)
			return
		}
		env, err := kombu.AppendEnvelope(nil, m)
		if err != nil {
			t.Errorf("%s: AppendEnvelope: %v", what, err)
			return
		}
		m2, err := kombu.DecodeEnvelope(env)
		if err != nil {
			t.Errorf("%s: DecodeEnvelope: %v", what, err)
			return
		}
		got, err := Decode(m2, newRegistry(t))
		if err != nil {
			t.Errorf("%s: Decode after Encode: %v", what, err)
			return
		}
		want := *task
		want.Protocol = 2
		if want.Lang == "" {
			want.Lang = "py"
		}
		if want.Origin == "" {
			want.Origin = AnonNodename()
		}
		want.UTC = true
		if want.Args == nil {
			want.Args = []any{}
		}
		if want.Kwargs == nil {
			want.Kwargs = map[string]any{}
		}
		if want.RootID == "" {
			want.RootID = want.ID
		}
		if want.ArgsRepr == "" {
			want.ArgsRepr = ArgsRepr(want.Args)
		}
		if want.KwargsRepr == "" {
			want.KwargsRepr = KwargsRepr(want.Kwargs)
		}
		if want.Stamped || want.Stamps != nil || want.StampedHeaders != nil || want.ReplacedTaskNesting != 0 {
			// Encode writes the 5.3+ header set, stamped_headers included.
			want.Stamped = true
			if want.Stamps == nil {
				want.Stamps = map[string]any{}
			}
		}
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("%s (%s): round trip mismatch:\n got %#v\nwant %#v", what, opt.Serializer, got, &want)
		}
	}
}

// hasSpecial reports values outside JSON's and msgpack's common model.
func hasSpecial(v any) bool {
	switch x := v.(type) {
	case []any:
		return slices.ContainsFunc(x, hasSpecial)
	case map[string]any:
		for _, e := range x {
			if hasSpecial(e) {
				return true
			}
		}
		return false
	case time.Time, kombu.Date, kombu.TimeOfDay, kombu.Decimal, kombu.UUID, *big.Int:
		return true
	}
	return false
}

// sameBody compares two serialized bodies by value (kombu sorts map keys,
// Python keeps insertion order; the order carries no meaning).
func sameBody(t *testing.T, got, want *kombu.Message) {
	t.Helper()
	r := newRegistry(t)
	g, err := r.DecodeBody(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.DecodeBody(want)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Body", g, w)
}

func TestEncodeShapeMatches52Capture(t *testing.T) {
	// Re-encode the decoded 5.2 basic capture; headers, properties and body
	// must be what Celery 5.2 sent (apart from the fresh delivery tag).
	orig := loadMessage(t, "redis-5.2-task-basic.json")
	task, err := Decode(orig, newRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Encode(task, EncodeOptions{ReplyTo: orig.Properties.ReplyTo, RoutingKey: "wire_q"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Headers", m.Headers, orig.Headers)
	sameBody(t, m, orig)
	eq(t, "ContentType", m.ContentType, "application/json")
	eq(t, "ContentEncoding", m.ContentEncoding, "utf-8")
	p := m.Properties
	eq(t, "CorrelationID", p.CorrelationID, orig.Properties.CorrelationID)
	eq(t, "ReplyTo", p.ReplyTo, orig.Properties.ReplyTo)
	eq(t, "DeliveryMode", p.DeliveryMode, uint8(2))
	eq(t, "Priority", p.Priority, 0)
	eq(t, "DeliveryInfo", p.DeliveryInfo, orig.Properties.DeliveryInfo)
	eq(t, "Expiration", p.Expiration, "")
	if len(p.DeliveryTag) != 36 || p.DeliveryTag == orig.Properties.DeliveryTag {
		t.Errorf("DeliveryTag = %q, want a fresh uuid", p.DeliveryTag)
	}
	// 16 headers exactly, as Celery 5.2.
	eq(t, "len(Headers)", len(m.Headers), 16)
}

func TestEncodeShapeMatches56Capture(t *testing.T) {
	orig := loadMessage(t, "redis-5.6-task-chord-header.json")
	task, err := Decode(orig, newRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Encode(task, EncodeOptions{RoutingKey: "wire_q"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Headers", m.Headers, orig.Headers)
	sameBody(t, m, orig)
}

func TestEncodeSendTaskOptions(t *testing.T) {
	orig := loadMessage(t, "redis-5.2-task-send_task-options.json")
	task, err := Decode(orig, newRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Encode(task, EncodeOptions{RoutingKey: "wire_other"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "Headers", m.Headers, orig.Headers)
}

func TestEncodeFields(t *testing.T) {
	now := time.Date(2026, 11, 26, 7, 55, 0, 0, time.UTC)
	task := &Task{
		ID: "id-1", Name: "tasks.add",
		Args:    []any{int64(2), "x"},
		Kwargs:  map[string]any{"k": 1.5},
		ETA:     now.Add(30 * time.Second),
		Expires: now.Add(120*time.Second + 500*time.Millisecond),
		TimeLimit: TimeLimit{
			Hard: Seconds(30), Soft: Seconds(2.5),
		},
		GroupIndex: intp(0),
		Extra:      map[string]any{"x-custom": "v", "compression": "stale"},
		Chord:      &Signature{Task: "tasks.xsum", Options: map[string]any{"task_id": "cb"}},
	}
	m, err := Encode(task, EncodeOptions{Serializer: "json", Priority: 5, DeliveryMode: 1, Exchange: "ex", RoutingKey: "rk",
		DeliveryTag: "tag", Origin: "me@host", Now: now, ReplyTo: "r"})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Headers
	eq(t, "eta", h["eta"], "2026-11-26T07:55:30+00:00")
	eq(t, "expires", h["expires"], "2026-11-26T07:57:00.500000+00:00")
	eq(t, "timelimit", h["timelimit"], []any{int64(30), 2.5})
	eq(t, "group_index", h["group_index"], int64(0))
	eq(t, "argsrepr", h["argsrepr"], "(2, 'x')")
	eq(t, "kwargsrepr", h["kwargsrepr"], "{'k': 1.5}")
	eq(t, "origin", h["origin"], "me@host")
	eq(t, "root_id", h["root_id"], "id-1")
	eq(t, "x-custom", h["x-custom"], "v")
	_, hasCompression := h["compression"]
	eq(t, "stale compression header dropped", hasCompression, false)
	eq(t, "Expiration", m.Properties.Expiration, "120500")
	eq(t, "Priority", m.Properties.Priority, 5)
	eq(t, "DeliveryMode", m.Properties.DeliveryMode, uint8(1))
	eq(t, "DeliveryTag", m.Properties.DeliveryTag, "tag")
	eq(t, "DeliveryInfo", m.Properties.DeliveryInfo, kombu.DeliveryInfo{Exchange: "ex", RoutingKey: "rk"})
	eq(t, "Body", string(m.Body), `[[2, "x"], {"k": 1.5}, {"callbacks": null, "chain": null, "chord": {"args": [], "immutable": false, "kwargs": {}, "options": {"task_id": "cb"}, "subtask_type": null, "task": "tasks.xsum"}, "errbacks": null}]`)

	// Expired already: clamped to 0.
	task.Expires = now.Add(-time.Hour)
	m, _ = Encode(task, EncodeOptions{Now: now})
	eq(t, "negative Expiration", m.Properties.Expiration, "0")

	for _, bad := range []*Task{nil, {Name: "x"}, {ID: "x"}} {
		if _, err := Encode(bad, EncodeOptions{}); err == nil {
			t.Errorf("Encode(%+v) succeeded", bad)
		}
	}
	if _, err := Encode(&Task{ID: "i", Name: "n"}, EncodeOptions{Serializer: "pickle"}); err == nil {
		t.Error("pickle serializer accepted")
	}
}

func TestEncodeCompressionAndNaive(t *testing.T) {
	eta := time.Date(2026, 1, 2, 3, 4, 5, 0, kombu.Naive)
	task := &Task{ID: "i", Name: "n", ETA: eta, Args: []any{"héllo"}, Stamps: map[string]any{"a": "b"}, StampedHeaders: []string{"a"}, ReplacedTaskNesting: 1}
	m, err := Encode(task, EncodeOptions{Compression: "zlib"})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "compression", m.Headers["compression"], "application/x-gzip")
	eq(t, "naive eta", m.Headers["eta"], "2026-01-02T03:04:05")
	eq(t, "stamped_headers", m.Headers["stamped_headers"], []any{"a"})
	eq(t, "replaced_task_nesting", m.Headers["replaced_task_nesting"], int64(1))
	got, err := Decode(m, newRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "ETA naive", IsNaive(got.ETA), true)
	eq(t, "ETA", got.ETA, eta)
	eq(t, "Args", got.Args, []any{"héllo"})
	roundTrip(t, "naive+stamps", task)
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tasks := []*Task{
		{ID: NewID(), Name: "a", Args: []any{}, Kwargs: map[string]any{}},
		{
			ID: "id", Name: "tasks.x", Shadow: "sh", Lang: "py", Group: "g", GroupIndex: intp(3), Retries: 2,
			ETA:       time.Date(2026, 11, 26, 7, 55, 52, 549680000, time.UTC),
			Expires:   time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC),
			TimeLimit: TimeLimit{Hard: Seconds(10)}, RootID: "root", ParentID: "parent",
			ArgsRepr: "(1,)", KwargsRepr: "{}", Origin: "o@h", IgnoreResult: true,
			Extra:  map[string]any{"custom": []any{int64(1), "two"}},
			Args:   []any{int64(1), nil, true, 2.5, "s", []any{}, map[string]any{"n": map[string]any{}}},
			Kwargs: map[string]any{"u": "ünïcode", "b": bigInt("123456789012345678901234567890")},
			Callbacks: []Signature{{Task: "cb", Args: []any{}, Kwargs: map[string]any{}, Options: map[string]any{},
				Extra: map[string]any{"chord_size": int64(2)}}},
			Errbacks: []Signature{{Task: "eb", Args: []any{}, Kwargs: map[string]any{}, Options: map[string]any{}, Immutable: true}},
			Chain: []Signature{{Task: "celery.group", SubtaskType: "group", Args: []any{}, Options: map[string]any{},
				Kwargs: map[string]any{"tasks": []any{Signature{Task: "m"}.Value()}}}},
			Chord: &Signature{Task: "c", Args: []any{int64(1)}, Kwargs: map[string]any{}, Options: map[string]any{"task_id": "t"}},
		},
	}
	for i, task := range tasks {
		roundTrip(t, "task "+string(rune('0'+i)), task)
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := NewID()
		if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
			t.Fatalf("bad uuid %q", id)
		}
		if id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("not a v4 uuid: %q", id)
		}
		if _, err := kombu.ParseUUID(id); err != nil {
			t.Fatalf("ParseUUID(%q): %v", id, err)
		}
		if seen[id] {
			t.Fatalf("duplicate %q", id)
		}
		seen[id] = true
	}
	if n := AnonNodename(); !strings.HasPrefix(n, "gen") || !strings.Contains(n, "@") {
		t.Errorf("AnonNodename = %q", n)
	}
}
