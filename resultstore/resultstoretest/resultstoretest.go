// Package resultstoretest is the conformance suite every result backend
// runs: it stores each state Celery's worker writes and checks, field by
// field, the document Python would read back.
package resultstoretest

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/celerity-go/celerity/resultstore"
)

// Config describes the backend under test.
type Config struct {
	// NewBackend returns a fresh backend; it registers its own cleanup
	// (closing it and deleting the keys or queues it created).
	NewBackend func(t *testing.T) resultstore.Backend
	// Read returns the latest document stored for taskID, read the way a
	// client would, decoded to plain values; nil when there is none. When
	// nil, Backend.Get is used.
	Read func(t *testing.T, b resultstore.Backend, taskID string) map[string]any
	// Prepare, when set, is called on every Meta before it is stored
	// (e.g. to set ReplyTo/CorrelationID for the rpc backend).
	Prepare func(m *resultstore.Meta)
	// RPCForm says the backend writes the rpc:// document (task_id,
	// status, result, traceback, children only) and keeps no state, so
	// the date_done, group/parent, extended and SUCCESS-protection checks
	// are skipped.
	RPCForm bool
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, cfg Config) {
	if cfg.NewBackend == nil {
		t.Fatal("resultstoretest: Config.NewBackend is required")
	}
	s := &suite{cfg: cfg}
	t.Run("Started", s.testStarted)
	t.Run("SuccessValues", s.testSuccessValues)
	t.Run("Failure", s.testFailure)
	t.Run("Retry", s.testRetry)
	t.Run("Revoked", s.testRevoked)
	t.Run("BatchStore", s.testBatch)
	t.Run("EmptyTaskID", s.testEmptyTaskID)
	if !cfg.RPCForm {
		t.Run("SuccessNotOverwritten", s.testSuccessNotOverwritten)
		t.Run("SuccessNotOverwrittenInBatch", s.testSuccessNotOverwrittenInBatch)
		t.Run("Extended", s.testExtended)
		t.Run("ExtendedUnknown", s.testExtendedUnknown)
		t.Run("GroupAndParent", s.testGroupParent)
	}
}

type suite struct{ cfg Config }

// NewTaskID returns a random uuid4 string.
func NewTaskID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *suite) store(t *testing.T, b resultstore.Backend, metas ...*resultstore.Meta) {
	t.Helper()
	if s.cfg.Prepare != nil {
		for _, m := range metas {
			s.cfg.Prepare(m)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Store(ctx, metas...); err != nil {
		t.Fatalf("Store: %v", err)
	}
}

func (s *suite) read(t *testing.T, b resultstore.Backend, id string) map[string]any {
	t.Helper()
	var doc map[string]any
	if s.cfg.Read != nil {
		doc = s.cfg.Read(t, b, id)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if doc, err = b.Get(ctx, id); err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
	}
	if doc == nil {
		t.Fatalf("no document stored for %s", id)
	}
	return doc
}

// checkCommon checks the keys every document has.
func (s *suite) checkCommon(t *testing.T, doc map[string]any, id, status string, ready bool) {
	t.Helper()
	expect(t, doc, "task_id", id)
	expect(t, doc, "status", status)
	if _, ok := doc["children"].([]any); !ok {
		t.Errorf("children = %#v, want a list", doc["children"])
	}
	if s.cfg.RPCForm {
		for _, k := range []string{"date_done", "group_id", "parent_id", "name"} {
			if _, ok := doc[k]; ok {
				t.Errorf("rpc document has %q", k)
			}
		}
		return
	}
	dd, ok := doc["date_done"]
	if !ok {
		t.Fatalf("date_done missing")
	}
	if !ready {
		if dd != nil {
			t.Errorf("date_done = %#v, want null for %s", dd, status)
		}
		return
	}
	str, ok := dd.(string)
	if !ok {
		t.Fatalf("date_done = %#v, want an ISO string", dd)
	}
	var parsed time.Time
	var err error
	for _, layout := range []string{"2006-01-02T15:04:05.999999", "2006-01-02T15:04:05.999999Z07:00"} {
		if parsed, err = time.Parse(layout, str); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("date_done %q does not parse: %v", str, err)
	}
	if d := time.Since(parsed); d < -time.Minute || d > time.Hour {
		t.Errorf("date_done %q is %v away from now", str, d)
	}
}

func expect(t *testing.T, doc map[string]any, key string, want any) {
	t.Helper()
	got, ok := doc[key]
	if !ok {
		t.Errorf("%q missing from %v", key, doc)
		return
	}
	if !Equal(got, want) {
		t.Errorf("%s = %#v, want %#v", key, got, want)
	}
}

func expectAbsent(t *testing.T, doc map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if v, ok := doc[k]; ok {
			t.Errorf("%q = %#v present, want absent", k, v)
		}
	}
}

func (s *suite) testStarted(t *testing.T) {
	b := s.cfg.NewBackend(t)
	id := NewTaskID()
	s.store(t, b, &resultstore.Meta{
		TaskID: id, Status: resultstore.Started,
		Result: map[string]any{"pid": int64(4242), "hostname": "gw1@host"},
	})
	doc := s.read(t, b, id)
	s.checkCommon(t, doc, id, resultstore.Started, false)
	expect(t, doc, "result", map[string]any{"pid": int64(4242), "hostname": "gw1@host"})
	expect(t, doc, "traceback", nil)
	expect(t, doc, "children", []any{})
}

func bigPow(base, exp int64) *big.Int {
	return new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil)
}

func (s *suite) testSuccessValues(t *testing.T) {
	cases := []struct {
		name  string
		value any
	}{
		{"int", int64(5)},
		{"negative", int64(-17)},
		{"zero", int64(0)},
		{"float", 2.5},
		{"string", "hello"},
		{"unicode", "héllo ✓ 日本 \U0001F600"},
		{"escapes", "quote\" back\\ nl\n tab\t ctl\x01"},
		{"true", true},
		{"false", false},
		{"none", nil},
		{"list", []any{int64(1), "two", 3.5, nil, []any{}}},
		{"dict", map[string]any{"a": int64(1), "b": []any{"x"}, "c": map[string]any{}}},
		{"bigint", bigPow(2, 70)},
		{"negbigint", new(big.Int).Neg(bigPow(2, 70))},
		{"maxint64", int64(1<<63 - 1)},
	}
	b := s.cfg.NewBackend(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := NewTaskID()
			now := time.Now()
			s.store(t, b, &resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: c.value, DateDone: now})
			doc := s.read(t, b, id)
			s.checkCommon(t, doc, id, resultstore.Success, true)
			expect(t, doc, "result", c.value)
			expect(t, doc, "traceback", nil)
		})
	}
}

const sampleTraceback = "Traceback (most recent call last):\n  File \"tasks.go\", line 1, in fail\nValueError: bad\n"

func excDict(typ, module string, msg ...any) map[string]any {
	if msg == nil {
		msg = []any{}
	}
	return map[string]any{"exc_type": typ, "exc_message": msg, "exc_module": module}
}

func (s *suite) testFailure(t *testing.T) {
	b := s.cfg.NewBackend(t)
	id := NewTaskID()
	s.store(t, b, &resultstore.Meta{
		TaskID: id, Status: resultstore.Failure, DateDone: time.Now(),
		Result:    &resultstore.ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"bad", int64(42)}},
		Traceback: sampleTraceback,
	})
	doc := s.read(t, b, id)
	s.checkCommon(t, doc, id, resultstore.Failure, true)
	expect(t, doc, "result", excDict("ValueError", "builtins", "bad", int64(42)))
	expect(t, doc, "traceback", sampleTraceback)

	// An ExceptionInfo value (not pointer) with no message encodes the same way.
	id2 := NewTaskID()
	s.store(t, b, &resultstore.Meta{
		TaskID: id2, Status: resultstore.Failure, DateDone: time.Now(),
		Result: resultstore.ExceptionInfo{Type: "TimeLimitExceeded", Module: "billiard.exceptions"},
	})
	doc = s.read(t, b, id2)
	expect(t, doc, "result", excDict("TimeLimitExceeded", "billiard.exceptions"))
	expect(t, doc, "traceback", nil)
}

func (s *suite) testRetry(t *testing.T) {
	b := s.cfg.NewBackend(t)
	id := NewTaskID()
	children := []any{[]any{[]any{id, nil}, nil}}
	s.store(t, b, &resultstore.Meta{
		TaskID: id, Status: resultstore.Retry,
		Result:    &resultstore.ExceptionInfo{Type: "Retry", Module: "celery.exceptions", Message: []any{"Retry in 1s"}},
		Traceback: sampleTraceback,
		Children:  children,
	})
	doc := s.read(t, b, id)
	s.checkCommon(t, doc, id, resultstore.Retry, false)
	expect(t, doc, "result", excDict("Retry", "celery.exceptions", "Retry in 1s"))
	expect(t, doc, "children", children)
	expect(t, doc, "traceback", sampleTraceback)
}

func (s *suite) testRevoked(t *testing.T) {
	b := s.cfg.NewBackend(t)
	for _, reason := range []string{"revoked", "expired", "terminated"} {
		id := NewTaskID()
		s.store(t, b, &resultstore.Meta{
			TaskID: id, Status: resultstore.Revoked, DateDone: time.Now(),
			Result: &resultstore.ExceptionInfo{Type: "TaskRevokedError", Module: "celery.exceptions", Message: []any{reason}},
		})
		doc := s.read(t, b, id)
		s.checkCommon(t, doc, id, resultstore.Revoked, true)
		expect(t, doc, "result", excDict("TaskRevokedError", "celery.exceptions", reason))
		expect(t, doc, "traceback", nil)
	}
}

func (s *suite) testBatch(t *testing.T) {
	b := s.cfg.NewBackend(t)
	const n = 100
	metas := make([]*resultstore.Meta, n)
	for i := range metas {
		metas[i] = &resultstore.Meta{TaskID: NewTaskID(), Status: resultstore.Success, Result: int64(i), DateDone: time.Now()}
	}
	s.store(t, b, metas...)
	for i, m := range metas {
		doc := s.read(t, b, m.TaskID)
		expect(t, doc, "status", resultstore.Success)
		expect(t, doc, "result", int64(i))
		expect(t, doc, "task_id", m.TaskID)
	}
}

func (s *suite) testEmptyTaskID(t *testing.T) {
	b := s.cfg.NewBackend(t)
	err := b.Store(context.Background(), &resultstore.Meta{Status: resultstore.Success, Result: int64(1)})
	if err == nil {
		t.Fatal("Store with an empty task id succeeded")
	}
}

func (s *suite) testSuccessNotOverwritten(t *testing.T) {
	b := s.cfg.NewBackend(t)
	id := NewTaskID()
	s.store(t, b, &resultstore.Meta{TaskID: id, Status: resultstore.Started, Result: map[string]any{"pid": int64(1), "hostname": "h"}})
	s.store(t, b, &resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: "first", DateDone: time.Now()})
	s.store(t, b, &resultstore.Meta{TaskID: id, Status: resultstore.Failure, DateDone: time.Now(),
		Result: &resultstore.ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"late"}}})
	s.store(t, b, &resultstore.Meta{TaskID: id, Status: resultstore.Started, Result: map[string]any{"pid": int64(2), "hostname": "h"}})
	s.store(t, b, &resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: "second", DateDone: time.Now()})
	doc := s.read(t, b, id)
	expect(t, doc, "status", resultstore.Success)
	expect(t, doc, "result", "first")

	// A FAILURE may be overwritten (a redelivered task can succeed).
	id2 := NewTaskID()
	s.store(t, b, &resultstore.Meta{TaskID: id2, Status: resultstore.Failure, DateDone: time.Now(),
		Result: &resultstore.ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"x"}}})
	s.store(t, b, &resultstore.Meta{TaskID: id2, Status: resultstore.Success, Result: int64(7), DateDone: time.Now()})
	doc = s.read(t, b, id2)
	expect(t, doc, "status", resultstore.Success)
	expect(t, doc, "result", int64(7))
}

func (s *suite) testSuccessNotOverwrittenInBatch(t *testing.T) {
	b := s.cfg.NewBackend(t)
	a, c := NewTaskID(), NewTaskID()
	s.store(t, b,
		&resultstore.Meta{TaskID: a, Status: resultstore.Started, Result: map[string]any{"pid": int64(1), "hostname": "h"}},
		&resultstore.Meta{TaskID: a, Status: resultstore.Success, Result: int64(1), DateDone: time.Now()},
		&resultstore.Meta{TaskID: c, Status: resultstore.Success, Result: int64(2), DateDone: time.Now()},
		&resultstore.Meta{TaskID: c, Status: resultstore.Started, Result: map[string]any{"pid": int64(1), "hostname": "h"}},
	)
	doc := s.read(t, b, a)
	expect(t, doc, "status", resultstore.Success)
	expect(t, doc, "result", int64(1))
	doc = s.read(t, b, c)
	expect(t, doc, "status", resultstore.Success)
	expect(t, doc, "result", int64(2))
}

func (s *suite) testExtended(t *testing.T) {
	b := s.cfg.NewBackend(t)
	id := NewTaskID()
	s.store(t, b, &resultstore.Meta{
		TaskID: id, Status: resultstore.Success, Result: int64(5), DateDone: time.Now(),
		Extended: &resultstore.Extended{
			Name: "tasks.add", Args: []any{int64(2), int64(3)}, Kwargs: map[string]any{"z": "x"},
			Worker: "gw1@host", Retries: 2, Queue: "celery",
		},
	})
	doc := s.read(t, b, id)
	s.checkCommon(t, doc, id, resultstore.Success, true)
	expect(t, doc, "name", "tasks.add")
	expect(t, doc, "args", []any{int64(2), int64(3)})
	expect(t, doc, "kwargs", map[string]any{"z": "x"})
	expect(t, doc, "worker", "gw1@host")
	expect(t, doc, "retries", int64(2))
	expect(t, doc, "queue", "celery")

	// nil args/kwargs are written as [] and {} like a Python request.
	id2 := NewTaskID()
	s.store(t, b, &resultstore.Meta{
		TaskID: id2, Status: resultstore.Started, Result: map[string]any{"pid": int64(1), "hostname": "h"},
		Extended: &resultstore.Extended{Name: "tasks.noargs", Worker: "gw1@host", Queue: "q"},
	})
	doc = s.read(t, b, id2)
	expect(t, doc, "args", []any{})
	expect(t, doc, "kwargs", map[string]any{})
	expect(t, doc, "retries", int64(0))

	// Without Extended none of the fields exist.
	id3 := NewTaskID()
	s.store(t, b, &resultstore.Meta{TaskID: id3, Status: resultstore.Success, Result: nil, DateDone: time.Now()})
	expectAbsent(t, s.read(t, b, id3), "name", "args", "kwargs", "worker", "retries", "queue")
}

func (s *suite) testExtendedUnknown(t *testing.T) {
	b := s.cfg.NewBackend(t)
	id := NewTaskID()
	s.store(t, b, &resultstore.Meta{
		TaskID: id, Status: resultstore.Failure, DateDone: time.Now(),
		Result:   &resultstore.ExceptionInfo{Type: "NotRegistered", Module: "celery.exceptions", Message: []any{"tasks.nope"}},
		Extended: &resultstore.Extended{Name: "ignored", Worker: "ignored", Unknown: true},
	})
	doc := s.read(t, b, id)
	s.checkCommon(t, doc, id, resultstore.Failure, true)
	for _, k := range []string{"name", "args", "kwargs", "worker", "retries", "queue"} {
		expect(t, doc, k, nil)
	}
	expect(t, doc, "result", excDict("NotRegistered", "celery.exceptions", "tasks.nope"))
}

func (s *suite) testGroupParent(t *testing.T) {
	b := s.cfg.NewBackend(t)
	gid, pid := NewTaskID(), NewTaskID()
	cases := []struct {
		name            string
		group, parent   string
		present, absent []string
	}{
		{"neither", "", "", nil, []string{"group_id", "parent_id"}},
		{"group", gid, "", []string{"group_id"}, []string{"parent_id"}},
		{"parent", "", pid, []string{"parent_id"}, []string{"group_id"}},
		{"both", gid, pid, []string{"group_id", "parent_id"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := NewTaskID()
			s.store(t, b, &resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: int64(1),
				DateDone: time.Now(), GroupID: c.group, ParentID: c.parent})
			doc := s.read(t, b, id)
			expectAbsent(t, doc, c.absent...)
			for _, k := range c.present {
				want := c.group
				if k == "parent_id" {
					want = c.parent
				}
				expect(t, doc, k, want)
			}
		})
	}
}

// Equal compares decoded values, treating all Go integer types and
// *big.Int values that are equal as equal, and float32 as float64.
func Equal(a, b any) bool {
	return reflect.DeepEqual(Normalize(a), Normalize(b))
}

// Normalize converts integers to int64 (or a *big.Int's decimal text
// prefixed "bigint:" when it does not fit), float32 to float64, and
// recurses into lists and maps.
func Normalize(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint:
		if uint64(x) <= 1<<63-1 {
			return int64(x)
		}
		return "bigint:" + new(big.Int).SetUint64(uint64(x)).String()
	case uint64:
		if x <= 1<<63-1 {
			return int64(x)
		}
		return "bigint:" + new(big.Int).SetUint64(x).String()
	case *big.Int:
		if x == nil {
			return nil
		}
		if x.IsInt64() {
			return x.Int64()
		}
		return "bigint:" + x.String()
	case big.Int:
		return Normalize(&x)
	case float32:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Normalize(e)
		}
		return out
	}
	return v
}
