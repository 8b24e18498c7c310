package resultstore

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/kombu"
)

const capturesDir = "../testdata/captures"

type capturedResult struct {
	file  string
	key   string
	ttl   string
	doc   []byte
	style Style
}

// loadResultCaptures reads every redis-*-result-*.txt capture: line 1 is
// "SETEX <key> <ttl>", line 2 the stored document.
func loadResultCaptures(t testing.TB) []capturedResult {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(capturesDir, "redis-*-result-*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 7 {
		t.Fatalf("found %d result captures, want at least 7", len(files))
	}
	var out []capturedResult
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(strings.TrimRight(string(data), "\n"), "\n", 2)
		if len(lines) != 2 {
			t.Fatalf("%s: want 2 lines", f)
		}
		head := strings.Fields(lines[0])
		if len(head) != 3 || head[0] != "SETEX" {
			t.Fatalf("%s: unexpected first line %q", f, lines[0])
		}
		c := capturedResult{file: filepath.Base(f), key: head[1], ttl: head[2], doc: []byte(lines[1])}
		if strings.Contains(c.file, "-5.6-") {
			c.style = Style{AwareDateDone: true}
		}
		out = append(out, c)
	}
	return out
}

// metaFromDoc rebuilds the Meta a worker would have stored to produce doc.
func metaFromDoc(t testing.TB, doc map[string]any) *Meta {
	t.Helper()
	m := &Meta{}
	m.TaskID = doc["task_id"].(string)
	m.Status = doc["status"].(string)
	if tb, ok := doc["traceback"].(string); ok {
		m.Traceback = tb
	}
	if ch, ok := doc["children"].([]any); ok && len(ch) > 0 {
		m.Children = ch
	}
	if dd, ok := doc["date_done"].(string); ok {
		var err error
		if m.DateDone, err = time.Parse("2006-01-02T15:04:05.999999Z07:00", dd); err != nil {
			if m.DateDone, err = time.Parse("2006-01-02T15:04:05.999999", dd); err != nil {
				t.Fatalf("date_done %q: %v", dd, err)
			}
		}
	}
	m.GroupID, _ = doc["group_id"].(string)
	m.ParentID, _ = doc["parent_id"].(string)
	switch r := doc["result"].(type) {
	case map[string]any:
		if e, ok := ExceptionFromValue(r); ok {
			m.Result = e
		} else if m.Status == Started {
			m.Result = StartedInfo{PID: int(r["pid"].(int64)), Hostname: r["hostname"].(string)}
		} else {
			m.Result = r
		}
	default:
		m.Result = r
	}
	if _, ok := doc["name"]; ok {
		if doc["name"] == nil {
			m.Extended = &Extended{Unknown: true}
		} else {
			x := &Extended{}
			x.Name = doc["name"].(string)
			x.Args, _ = doc["args"].([]any)
			x.Kwargs, _ = doc["kwargs"].(map[string]any)
			x.Worker, _ = doc["worker"].(string)
			x.Retries = int(doc["retries"].(int64))
			x.Queue, _ = doc["queue"].(string)
			m.Extended = x
		}
	}
	return m
}

// topLevelKeys returns the keys of a JSON object in document order.
func topLevelKeys(t testing.TB, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %v %v", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// TestAppendMetaGolden re-encodes every captured result document from the
// Meta a worker would hold and requires identical bytes (hence identical
// values and key order).
func TestAppendMetaGolden(t *testing.T) {
	for _, c := range loadResultCaptures(t) {
		t.Run(c.file, func(t *testing.T) {
			doc, err := DecodeMeta(c.doc)
			if err != nil {
				t.Fatal(err)
			}
			if want := "celery-task-meta-" + doc["task_id"].(string); c.key != want {
				t.Errorf("captured key %q, want %q", c.key, want)
			}
			m := metaFromDoc(t, doc)
			got, err := AppendMeta(nil, m, c.style)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, got, c.doc) {
				t.Errorf("value mismatch\n got %s\nwant %s", got, c.doc)
			}
			if g, w := topLevelKeys(t, got), topLevelKeys(t, c.doc); !reflect.DeepEqual(g, w) {
				t.Errorf("key order\n got %q\nwant %q", g, w)
			}
			if !bytes.Equal(got, c.doc) {
				t.Errorf("bytes differ\n got %s\nwant %s", got, c.doc)
			}
		})
	}
}

// TestAppendRPCMetaGolden compares with the rpc:// bodies captured on AMQP.
func TestAppendRPCMetaGolden(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(capturesDir, "amqp-5.2-rpc-result-*.json"))
	if len(files) != 2 {
		t.Fatalf("found %d rpc captures, want 2", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var capture struct {
				Body string `json:"body"`
			}
			if err := json.Unmarshal(raw, &capture); err != nil {
				t.Fatal(err)
			}
			doc, err := DecodeMeta([]byte(capture.Body))
			if err != nil {
				t.Fatal(err)
			}
			m := metaFromDoc(t, doc)
			m.DateDone = time.Now() // never written in the rpc form
			m.GroupID, m.ParentID = "g", "p"
			m.Extended = &Extended{Name: "x"}
			got, err := AppendRPCMeta(nil, m, Style{})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != capture.Body {
				t.Errorf("bytes differ\n got %s\nwant %s", got, capture.Body)
			}
		})
	}
}

func TestAppendMetaFields(t *testing.T) {
	done := time.Date(2026, 11, 26, 7, 56, 36, 430742000, time.UTC)
	cases := []struct {
		name  string
		meta  Meta
		style Style
		want  string
	}{
		{
			name: "minimal pending-like",
			meta: Meta{TaskID: "t1", Status: Started},
			want: `{"status": "STARTED", "result": null, "traceback": null, "children": [], "date_done": null, "task_id": "t1"}`,
		},
		{
			name: "group and parent",
			meta: Meta{TaskID: "t2", Status: Success, Result: int64(3), DateDone: done, GroupID: "g", ParentID: "p"},
			want: `{"status": "SUCCESS", "result": 3, "traceback": null, "children": [], "date_done": "2026-11-26T07:56:36.430742", "group_id": "g", "parent_id": "p", "task_id": "t2"}`,
		},
		{
			name: "parent only",
			meta: Meta{TaskID: "t3", Status: Success, DateDone: done, ParentID: "p"},
			want: `{"status": "SUCCESS", "result": null, "traceback": null, "children": [], "date_done": "2026-11-26T07:56:36.430742", "parent_id": "p", "task_id": "t3"}`,
		},
		{
			name:  "aware date_done",
			meta:  Meta{TaskID: "t4", Status: Success, DateDone: done},
			style: Style{AwareDateDone: true},
			want:  `{"status": "SUCCESS", "result": null, "traceback": null, "children": [], "date_done": "2026-11-26T07:56:36.430742+00:00", "task_id": "t4"}`,
		},
		{
			name: "unknown task extended nulls",
			meta: Meta{TaskID: "t5", Status: Failure, DateDone: done.Truncate(time.Second),
				Result:   &ExceptionInfo{Type: "NotRegistered", Module: "celery.exceptions", Message: []any{"x.y"}},
				Extended: &Extended{Unknown: true, Name: "ignored"}},
			want: `{"status": "FAILURE", "result": {"exc_type": "NotRegistered", "exc_message": ["x.y"], "exc_module": "celery.exceptions"}, "traceback": null, "children": [], "date_done": "2026-11-26T07:56:36", "name": null, "args": null, "kwargs": null, "worker": null, "retries": null, "queue": null, "task_id": "t5"}`,
		},
		{
			name: "extended with empty queue and nil args",
			meta: Meta{TaskID: "t6", Status: Started, Result: StartedInfo{PID: 7, Hostname: "w@h"},
				Extended: &Extended{Name: "n", Worker: "w@h", Retries: 3}},
			want: `{"status": "STARTED", "result": {"pid": 7, "hostname": "w@h"}, "traceback": null, "children": [], "date_done": null, "name": "n", "args": [], "kwargs": {}, "worker": "w@h", "retries": 3, "queue": null, "task_id": "t6"}`,
		},
		{
			name: "unicode and escapes are ASCII-escaped",
			meta: Meta{TaskID: "t7", Status: Failure, Traceback: "é\n\"", Result: "日本"},
			want: `{"status": "FAILURE", "result": "\u65e5\u672c", "traceback": "\u00e9\n\"", "children": [], "date_done": null, "task_id": "t7"}`,
		},
		{
			name: "big int and nested values",
			meta: Meta{TaskID: "t8", Status: Success, Result: []any{new(big.Int).Lsh(big.NewInt(1), 70), 1.5, map[string]any{"b": nil, "a": true}}},
			want: `{"status": "SUCCESS", "result": [1180591620717411303424, 1.5, {"a": true, "b": null}], "traceback": null, "children": [], "date_done": null, "task_id": "t8"}`,
		},
		{
			name: "exception value with nil message",
			meta: Meta{TaskID: "t9", Status: Revoked, Result: ExceptionInfo{Type: "TaskRevokedError", Module: "celery.exceptions"}},
			want: `{"status": "REVOKED", "result": {"exc_type": "TaskRevokedError", "exc_message": [], "exc_module": "celery.exceptions"}, "traceback": null, "children": [], "date_done": null, "task_id": "t9"}`,
		},
		{
			name: "typed JSON per meta",
			meta: Meta{TaskID: "t10", Status: Success, Result: kombu.Decimal("1.10"), TypedJSON: true},
			want: `{"status": "SUCCESS", "result": {"__type__": "decimal", "__value__": "1.10"}, "traceback": null, "children": [], "date_done": null, "task_id": "t10"}`,
		},
		{
			name: "plain JSON decimal",
			meta: Meta{TaskID: "t11", Status: Success, Result: kombu.Decimal("1.10")},
			want: `{"status": "SUCCESS", "result": "1.10", "traceback": null, "children": [], "date_done": null, "task_id": "t11"}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := AppendMeta([]byte("prefix:"), &c.meta, c.style)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix:"+c.want {
				t.Errorf("\n got %s\nwant prefix:%s", got, c.want)
			}
			// MetaValue must describe the same document.
			v, err := MetaValue(&c.meta, c.style)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := kombu.AppendJSON(nil, v, kombu.JSONPlain)
			if err != nil {
				if c.meta.TypedJSON {
					return
				}
				t.Fatal(err)
			}
			if !c.meta.TypedJSON && !jsonEqual(t, enc, []byte(c.want)) {
				t.Errorf("MetaValue differs\n got %s\nwant %s", enc, c.want)
			}
		})
	}
}

func TestAppendMetaErrors(t *testing.T) {
	if _, err := AppendMeta(nil, &Meta{Status: Success}, Style{}); err != ErrNoTaskID {
		t.Errorf("empty id: err = %v, want ErrNoTaskID", err)
	}
	if _, err := AppendRPCMeta(nil, &Meta{Status: Success}, Style{}); err != ErrNoTaskID {
		t.Errorf("rpc empty id: err = %v, want ErrNoTaskID", err)
	}
	if _, err := MetaValue(&Meta{}, Style{}); err != ErrNoTaskID {
		t.Errorf("MetaValue empty id: err = %v, want ErrNoTaskID", err)
	}
	// An unencodable result fails instead of writing a broken document.
	if _, err := AppendMeta(nil, &Meta{TaskID: "x", Status: Success, Result: make(chan int)}, Style{}); err == nil {
		t.Error("channel result encoded without error")
	}
	if _, err := AppendMeta(nil, &Meta{TaskID: "x", Status: Success, Result: []byte{0xff}}, Style{}); err == nil {
		t.Error("non-UTF-8 bytes encoded in plain mode without error")
	}
}

func TestAppendISOTime(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+30*60)
	odd := time.FixedZone("ODD", -(3*3600 + 25*60 + 7))
	base := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.UTC)
	cases := []struct {
		name  string
		t     time.Time
		style Style
		want  string
	}{
		{"naive micro", base, Style{}, "2026-01-02T03:04:05.600000"},
		{"naive no micro", base.Truncate(time.Second), Style{}, "2026-01-02T03:04:05"},
		{"naive from other zone", base.In(ist), Style{}, "2026-01-02T03:04:05.600000"},
		{"naive drops nanos", base.Add(999), Style{}, "2026-01-02T03:04:05.600000"},
		{"aware utc", base, Style{AwareDateDone: true}, "2026-01-02T03:04:05.600000+00:00"},
		{"aware location", base, Style{AwareDateDone: true, Location: ist}, "2026-01-02T08:34:05.600000+05:30"},
		{"aware negative seconds offset", base.Truncate(time.Second), Style{AwareDateDone: true, Location: odd}, "2026-01-01T23:38:58-03:25:07"},
		{"location ignored when naive", base, Style{Location: ist}, "2026-01-02T03:04:05.600000"},
		{"small year", time.Date(33, 1, 1, 0, 0, 0, 1000, time.UTC), Style{}, "0033-01-01T00:00:00.000001"},
	}
	for _, c := range cases {
		if got := string(AppendISOTime(nil, c.t, c.style)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestDecodeMeta(t *testing.T) {
	for _, c := range loadResultCaptures(t) {
		doc, err := DecodeMeta(c.doc)
		if err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		if doc["task_id"] == nil || doc["status"] == nil {
			t.Errorf("%s: task_id/status missing: %v", c.file, doc)
		}
	}
	doc, err := DecodeMeta([]byte(`{"status": "SUCCESS", "result": {"__type__": "decimal", "__value__": "1.10"}, "task_id": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if doc["result"] != kombu.Decimal("1.10") {
		t.Errorf("typed marker not decoded: %#v", doc["result"])
	}
	for _, bad := range []string{``, `[]`, `"x"`, `null`, `{`, `{"a": 1} x`} {
		if _, err := DecodeMeta([]byte(bad)); err == nil {
			t.Errorf("DecodeMeta(%q) succeeded", bad)
		}
	}
}

func TestExceptionFromValue(t *testing.T) {
	cases := []struct {
		in   any
		want *ExceptionInfo
	}{
		{map[string]any{"exc_type": "E", "exc_module": "m", "exc_message": []any{"a"}}, &ExceptionInfo{Type: "E", Module: "m", Message: []any{"a"}}},
		{map[string]any{"exc_type": "E", "exc_message": "text"}, &ExceptionInfo{Type: "E", Message: []any{"text"}}},
		{map[string]any{"exc_type": "E"}, &ExceptionInfo{Type: "E"}},
		{map[string]any{"exc_message": []any{}}, nil},
		{"E", nil},
		{nil, nil},
	}
	for i, c := range cases {
		got, ok := ExceptionFromValue(c.in)
		if ok != (c.want != nil) || (ok && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("case %d: got %#v %v, want %#v", i, got, ok, c.want)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, c := range loadResultCaptures(f) {
		f.Add(c.doc)
	}
	files, _ := filepath.Glob(filepath.Join(capturesDir, "amqp-5.2-rpc-result-*.json"))
	for _, file := range files {
		raw, _ := os.ReadFile(file)
		var capture struct{ Body string }
		if json.Unmarshal(raw, &capture) == nil {
			f.Add([]byte(capture.Body))
		}
	}
	f.Add([]byte(`{"status": "SUCCESS", "result": {"__type__": "datetime", "__value__": "2024-01-02T03:04:05+00:00"}}`))
	f.Add([]byte(`{"result": {"__type__": "nope", "__value__": 1}}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := DecodeMeta(data)
		if err != nil {
			if doc != nil {
				t.Fatalf("error %v with non-nil doc", err)
			}
			return
		}
		if doc == nil {
			t.Fatal("nil doc without error")
		}
		// Whatever decodes must survive re-encoding through the meta path
		// when it carries an id (no panic; errors are fine).
		if id, ok := doc["task_id"].(string); ok && id != "" {
			st, _ := doc["status"].(string)
			_, _ = AppendMeta(nil, &Meta{TaskID: id, Status: st, Result: doc["result"], TypedJSON: true}, Style{})
		}
		if e, ok := ExceptionFromValue(doc["result"]); ok && e == nil {
			t.Fatal("ok with nil exception")
		}
	})
}

func BenchmarkAppendMeta(b *testing.B) {
	m := &Meta{
		TaskID: "aaaaaaaa-0000-4000-8000-000000000001", Status: Success,
		Result: int64(5), DateDone: time.Now(),
		Extended: &Extended{Name: "wiretasks.add", Args: []any{int64(2), int64(3)}, Kwargs: map[string]any{},
			Worker: "wire1@vm", Queue: "wire_q"},
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendMeta(buf[:0], m, Style{}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeMeta(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(capturesDir, "redis-5.2-result-success-SUCCESS.txt"))
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan()
	sc.Scan()
	doc := append([]byte(nil), sc.Bytes()...)
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := DecodeMeta(doc); err != nil {
			b.Fatal(err)
		}
	}
}
