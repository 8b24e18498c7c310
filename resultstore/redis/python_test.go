package redisstore

import (
	"bufio"
	"context"
	"encoding/json"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/resultstore"
	"github.com/celerity-go/celerity/resultstore/resultstoretest"
)

const pythonBin = "/usr/bin/python3"

// compatURL is the Redis DB the Python compatibility tests use (a private
// DB; every key is a unique task id and is deleted afterwards).
func compatURL() string {
	if u := os.Getenv("CELERITY_COMPAT_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/10"
}

// requireCelery skips unless /usr/bin/python3 can import celery (fails
// when CI=true).
func requireCelery(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("python compat tests skipped in -short mode")
	}
	err := exec.Command(pythonBin, "-c", "import celery").Run()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s cannot import celery: %v", pythonBin, err)
		}
		t.Skipf("%s cannot import celery: %v", pythonBin, err)
	}
}

type pyValue struct {
	Type   string   `json:"type"`
	Module string   `json:"module"`
	Args   []string `json:"args"`
	Repr   string   `json:"repr"`
}

type pyReport struct {
	State     string   `json:"state"`
	Value     *pyValue `json:"value"`
	Raised    *pyValue `json:"raised"`
	Info      *pyValue `json:"info"`
	Traceback *string  `json:"traceback"`
	DateDone  *string  `json:"date_done"`
}

func pyRead(t *testing.T, ids ...string) map[string]pyReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"testdata/pyresult.py", "read", compatURL()}, ids...)
	out, err := exec.CommandContext(ctx, pythonBin, args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("pyresult.py read: %v\n%s", err, stderr)
	}
	var reports map[string]pyReport
	if err := json.Unmarshal(out, &reports); err != nil {
		t.Fatalf("pyresult.py output %q: %v", out, err)
	}
	return reports
}

func newCompatBackend(t *testing.T, style resultstore.Style) *Backend {
	t.Helper()
	raw := rawClient(t, compatURL())
	b, err := New(context.Background(), compatURL(), Options{Style: style})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleteMatching(raw, "celery-task-meta-rstest-*")
		b.Close()
	})
	return b
}

// compatID is a unique task id whose keys newCompatBackend cleans up.
func compatID() string { return "rstest-" + resultstoretest.NewTaskID() }

func TestPythonReadsResults(t *testing.T) {
	requireCelery(t)
	for _, style := range []struct {
		name  string
		style resultstore.Style
	}{{"5.2 style", resultstore.Style{}}, {"aware date_done", resultstore.Style{AwareDateDone: true}}} {
		t.Run(style.name, func(t *testing.T) {
			bothStorePaths(t, func(t *testing.T, pipelineMin int) { testPythonReadsResults(t, style.style, pipelineMin) })
		})
	}
}

func testPythonReadsResults(t *testing.T, style resultstore.Style, pipelineMin int) {
	b := newCompatBackend(t, style)
	b.pipelineMin = pipelineMin
	ctx := context.Background()
	now := time.Now()
	big70 := new(big.Int).Lsh(big.NewInt(1), 70)
	successes := []struct {
		value    any
		pyType   string
		wantRepr string
	}{
		{int64(5), "int", "5"},
		{-2.5, "float", "-2.5"},
		{"text", "str", "'text'"},
		{"héllo ✓ \U0001F600", "str", "'héllo ✓ \U0001F600'"},
		{[]any{int64(1), "a", nil, true}, "list", "[1, 'a', None, True]"},
		{map[string]any{"k": []any{1.5}}, "dict", "{'k': [1.5]}"},
		{nil, "NoneType", "None"},
		{big70, "int", "1180591620717411303424"},
	}
	var ids []string
	var metas []*resultstore.Meta
	for _, s := range successes {
		id := compatID()
		ids = append(ids, id)
		metas = append(metas, &resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: s.value, DateDone: now})
	}
	tb := "Traceback (most recent call last):\n  File \"worker.go\", line 1\nValueError: msg\n"
	valueErr, customErr, revoked, started, retry := compatID(), compatID(), compatID(), compatID(), compatID()
	metas = append(metas,
		&resultstore.Meta{TaskID: valueErr, Status: resultstore.Failure, DateDone: now, Traceback: tb,
			Result: &resultstore.ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"msg"}}},
		&resultstore.Meta{TaskID: customErr, Status: resultstore.Failure, DateDone: now,
			Result: &resultstore.ExceptionInfo{Type: "GoTaskError", Module: "celerity_not_importable", Message: []any{"boom", int64(42)}}},
		&resultstore.Meta{TaskID: revoked, Status: resultstore.Revoked, DateDone: now,
			Result: &resultstore.ExceptionInfo{Type: "TaskRevokedError", Module: "celery.exceptions", Message: []any{"revoked"}}},
		&resultstore.Meta{TaskID: started, Status: resultstore.Started, Result: resultstore.StartedInfo{PID: 4242, Hostname: "gw1@host"},
			Extended: &resultstore.Extended{Name: "tasks.add", Args: []any{int64(1)}, Worker: "gw1@host", Queue: "celery"}},
		&resultstore.Meta{TaskID: retry, Status: resultstore.Retry, Traceback: tb,
			Result: &resultstore.ExceptionInfo{Type: "Retry", Module: "celery.exceptions", Message: []any{"Retry in 1s"}}},
	)
	if err := b.Store(ctx, metas...); err != nil {
		t.Fatal(err)
	}
	reports := pyRead(t, append(ids, valueErr, customErr, revoked, started, retry)...)

	for i, s := range successes {
		r := reports[ids[i]]
		if r.State != "SUCCESS" || r.Value == nil || r.Value.Type != s.pyType || r.Value.Repr != s.wantRepr {
			t.Errorf("success %d: state %s value %+v, want %s %s", i, r.State, r.Value, s.pyType, s.wantRepr)
		}
		if r.Raised != nil {
			t.Errorf("success %d raised %+v", i, r.Raised)
		}
		if r.Traceback != nil {
			t.Errorf("success %d traceback %q", i, *r.Traceback)
		}
		if r.DateDone == nil {
			t.Errorf("success %d: date_done not parsed", i)
		} else if dd, err := time.Parse("2006-01-02T15:04:05.999999", strings.TrimSuffix(*r.DateDone, "+00:00")); err != nil || dd.Sub(now.UTC().Truncate(time.Microsecond)).Abs() > time.Second {
			t.Errorf("success %d: date_done %q vs %v (%v)", i, *r.DateDone, now.UTC(), err)
		}
	}

	r := reports[valueErr]
	if r.State != "FAILURE" || r.Raised == nil || r.Raised.Type != "ValueError" || r.Raised.Module != "builtins" || r.Raised.Repr != "ValueError('msg')" {
		t.Errorf("ValueError: %+v raised %+v", r, r.Raised)
	}
	if r.Value == nil || r.Value.Repr != "ValueError('msg')" {
		t.Errorf("ValueError get(propagate=False) = %+v", r.Value)
	}
	if r.Traceback == nil || *r.Traceback != tb {
		t.Errorf("traceback = %v", r.Traceback)
	}

	r = reports[customErr]
	if r.State != "FAILURE" || r.Raised == nil || r.Raised.Type != "GoTaskError" ||
		strings.Join(r.Raised.Args, ",") != "'boom',42" {
		t.Errorf("custom exception: %+v raised %+v", r, r.Raised)
	}

	r = reports[revoked]
	if r.State != "REVOKED" || r.Raised == nil || r.Raised.Type != "TaskRevokedError" || r.Raised.Module != "celery.exceptions" ||
		strings.Join(r.Raised.Args, ",") != "'revoked'" {
		t.Errorf("revoked: %+v raised %+v", r, r.Raised)
	}

	r = reports[started]
	if r.State != "STARTED" || r.Info == nil || r.Info.Type != "dict" || r.Info.Repr != "{'pid': 4242, 'hostname': 'gw1@host'}" {
		t.Errorf("started: %+v info %+v", r, r.Info)
	}

	r = reports[retry]
	if r.State != "RETRY" || r.Info == nil || r.Info.Type != "Retry" || r.Info.Module != "celery.exceptions" {
		t.Errorf("retry: %+v info %+v", r, r.Info)
	}
}

// TestPythonGetWokenByPublish proves the PUBLISH path: the Python client
// has subscribed and done its only GET before the result exists, so only
// the PUBLISH can complete its get(). The result is stored alone and in a
// batch written by storeBatched.
func TestPythonGetWokenByPublish(t *testing.T) {
	requireCelery(t)
	bothStorePaths(t, testPythonGetWokenByPublish)
}

func testPythonGetWokenByPublish(t *testing.T, pipelineMin int) {
	b := newCompatBackend(t, resultstore.Style{})
	b.pipelineMin = pipelineMin
	raw := rawClient(t, compatURL())
	id := compatID()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonBin, "testdata/pyresult.py", "wait", compatURL(), id, "10")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "initial-get-done" {
		t.Fatalf("python did not start waiting: %q %v\n%s", lines.Text(), lines.Err(), stderr.String())
	}
	n, err := raw.PubSubNumSub(ctx, b.TaskKey(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n[b.TaskKey(id)] != 1 {
		t.Fatalf("python is not subscribed to %s: %v", b.TaskKey(id), n)
	}
	stored := time.Now()
	if err := b.Store(ctx, &resultstore.Meta{TaskID: id, Status: resultstore.Success, Result: []any{"woken", int64(1)}, DateDone: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() {
		t.Fatalf("no result from python: %v\n%s", lines.Err(), stderr.String())
	}
	returned := time.Since(stored)
	var out struct {
		Value   pyValue `json:"value"`
		Elapsed float64 `json:"elapsed"`
	}
	if err := json.Unmarshal(lines.Bytes(), &out); err != nil {
		t.Fatalf("%q: %v", lines.Text(), err)
	}
	if out.Value.Repr != "['woken', 1]" {
		t.Errorf("python got %+v", out.Value)
	}
	if returned > 3*time.Second {
		t.Errorf("python returned %v after the store, want promptly (timeout was 10s)", returned)
	}
}
