package compat_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// goWorkerArgs are the arguments for a Go worker consuming queue on the
// compat Redis databases.
func goWorkerArgs(t *testing.T, queue string, extra ...string) []string {
	return append([]string{"-b", brokerURL(), "--result-backend", backendURL(), "-Q", queue,
		"-n", uniq(t, "go") + "@%h", "-c", "4"}, extra...)
}

func clientConf(queue string) map[string]any {
	return map[string]any{"task_default_queue": queue}
}

func TestRedisBasicTasks(t *testing.T) {
	rc := requireRedis(t)
	q := uniq(t, "q")
	cleanupQueue(t, rc, q)
	startGoWorker(t, goWorkerArgs(t, q)...)

	big := strings.Repeat("x", 1<<20)
	res := pyClient(t, clientSpec{Broker: brokerURL(), Backend: backendURL(), Conf: clientConf(q), Calls: []call{
		{Name: "tasks.add", Args: []any{2, 3}},
		{Name: "tasks.add", Kwargs: map[string]any{"x": 2, "y": 3}},
		{Name: "tasks.add", Args: []any{2.5, 1}},
		{Name: "tasks.add", Args: []any{1 << 62, 1 << 62}},
		{Name: "tasks.echo", Args: []any{"héllo ☃ 日本", nil, true, 1.5}, Kwargs: map[string]any{"k": []any{1, "two"}}},
		{Name: "tasks.echo", Args: []any{big}},
		{Name: "app1.tasks1.deal1", Args: []any{"hi"}},
	}})
	want := []struct{ repr, typ string }{
		{"5", "int"},
		{"5", "int"},
		{"3.5", "float"},
		{"9223372036854775808", "int"},
		{"[['héllo ☃ 日本', None, True, 1.5], {'k': [1, 'two']}]", "list"},
		{"", "list"},
		{"'hi======='", "str"},
	}
	for i, w := range want {
		r := res[i]
		if r.State != "SUCCESS" {
			t.Errorf("call %d: state %s, exc %s %s", i, r.State, r.ExcType, r.ExcStr)
			continue
		}
		if r.ValueType != w.typ || (w.repr != "" && r.ValueRepr != w.repr) {
			t.Errorf("call %d: got %s %s, want %s %s", i, r.ValueType, r.ValueRepr, w.typ, w.repr)
		}
	}
	if got, ok := res[5].Value.([]any); !ok || len(got) != 2 || fmt.Sprint(got[0]) != fmt.Sprint([]any{big}) {
		t.Errorf("1 MB echo did not come back intact")
	}
}

func TestRedisFailureAndTypeError(t *testing.T) {
	rc := requireRedis(t)
	q := uniq(t, "q")
	cleanupQueue(t, rc, q)
	startGoWorker(t, goWorkerArgs(t, q)...)
	res := pyClient(t, clientSpec{Broker: brokerURL(), Backend: backendURL(), Conf: clientConf(q), Calls: []call{
		{Name: "tasks.fail", Args: []any{"boom"}},
		{Name: "tasks.add", Args: []any{1}},
		{Name: "tasks.add", Args: []any{1, 2, 3}},
		{Name: "tasks.add", Args: []any{1}, Kwargs: map[string]any{"x": 2}},
		{Name: "tasks.add", Args: []any{1, 2}, Kwargs: map[string]any{"z": 2}},
		{Name: "tasks.sleep", Args: []any{-1}},
		{Name: "tasks.sleep", Args: []any{1e300}},
	}})
	f := res[0]
	if f.State != "FAILURE" || f.ExcType != "ValueError" || f.ExcModule != "builtins" || f.ExcStr != "boom" {
		t.Errorf("fail: got state %s raised %s.%s(%q)", f.State, f.ExcModule, f.ExcType, f.ExcStr)
	}
	if f.Traceback == nil || !strings.Contains(*f.Traceback, "ValueError: boom") {
		t.Errorf("fail: traceback %v", f.Traceback)
	}
	wantTE := []string{
		"add() missing 1 required positional argument: 'y'",
		"add() takes 2 positional arguments but 3 were given",
		"add() got multiple values for argument 'x'",
		"add() got an unexpected keyword argument 'z'",
	}
	for i, w := range wantTE {
		r := res[i+1]
		if r.State != "FAILURE" || r.ExcType != "TypeError" || r.ExcStr != w {
			t.Errorf("call %d: got %s %s(%q), want TypeError(%q)", i+1, r.State, r.ExcType, r.ExcStr, w)
		}
	}
	// time.sleep's own errors, as a Python worker running the reference
	// task would store them.
	for i, w := range []struct{ typ, str string }{
		{"ValueError", "sleep length must be non-negative"},
		{"OverflowError", "timestamp too large to convert to C _PyTime_t"},
	} {
		r := res[5+i]
		if r.State != "FAILURE" || r.ExcType != w.typ || r.ExcModule != "builtins" || r.ExcStr != w.str {
			t.Errorf("sleep call %d: got %s %s.%s(%q), want builtins.%s(%q)", i, r.State, r.ExcModule, r.ExcType, r.ExcStr, w.typ, w.str)
		}
	}
}

func TestRedisStateTransitions(t *testing.T) {
	rc := requireRedis(t)
	q := uniq(t, "q")
	cleanupQueue(t, rc, q)
	cfg := filepath.Join(t.TempDir(), "celery.yaml")
	if err := os.WriteFile(cfg, []byte("task_track_started: true\nresult_extended: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startGoWorker(t, goWorkerArgs(t, q, "--config", cfg)...)
	res := pyClient(t, clientSpec{Broker: brokerURL(), Backend: backendURL(), Conf: clientConf(q), States: true, Calls: []call{
		{Name: "tasks.sleep", Args: []any{0.5}},
	}})
	r := res[0]
	if r.State != "SUCCESS" || r.ValueRepr != "0.5" {
		t.Fatalf("sleep: %+v", r)
	}
	// The client may poll the first time after the worker started the
	// task, so PENDING is optional; STARTED must come before SUCCESS.
	if got := strings.TrimPrefix(strings.Join(r.States, ","), "PENDING,"); got != "STARTED,SUCCESS" {
		t.Errorf("states seen %v, want [PENDING] STARTED SUCCESS", r.States)
	}
}

func TestRedisUnregisteredAndRefusedContent(t *testing.T) {
	rc := requireRedis(t)
	q := uniq(t, "q")
	cleanupQueue(t, rc, q)
	w := startGoWorker(t, goWorkerArgs(t, q)...)

	res := pyClient(t, clientSpec{Broker: brokerURL(), Backend: backendURL(), Conf: clientConf(q), Calls: []call{
		{Name: "tasks.does_not_exist", Args: []any{1}},
		{Name: "tasks.add", Args: []any{20, 22}},
	}})
	if r := res[0]; r.State != "FAILURE" || r.ExcType != "NotRegistered" || !strings.Contains(r.ExcStr, "tasks.does_not_exist") {
		t.Errorf("unregistered: %+v", r)
	}
	if r := res[1]; r.ValueRepr != "42" {
		t.Errorf("task after unregistered: %+v", r)
	}
	if n := w.count("Received unregistered task of type 'tasks.does_not_exist'"); n != 1 {
		t.Errorf("unregistered log lines: %d", n)
	}

	// A pickle message is refused: logged, rejected, no result; the next
	// message still runs.
	out := runPy(t, fmt.Sprintf(`
from celery import Celery
app = Celery("p", broker=%q, backend=%q)
app.conf.update(task_default_queue=%q, accept_content=["pickle", "json"])
r1 = app.send_task("tasks.add", args=(1, 1), serializer="pickle")
r2 = app.send_task("tasks.add", args=(3, 4))
print(r1.id, r2.get(timeout=30))
`, brokerURL(), backendURL(), q), nil)
	var pickledID string
	var got int
	if _, err := fmt.Sscan(out, &pickledID, &got); err != nil || got != 7 {
		t.Fatalf("python output %q: %v", out, err)
	}
	w.waitFor("Refusing to deserialize untrusted content of type pickle (application/x-python-serialize)", 10*time.Second)
	ctx := context.Background()
	eventually(t, 5*time.Second, "queue and unacked to be empty of the refused message", func() bool {
		n, _ := rc.LLen(ctx, q).Result()
		vals, _ := rc.HVals(ctx, "unacked").Result()
		for _, v := range vals {
			if strings.Contains(v, pickledID) {
				return false
			}
		}
		return n == 0
	})
	state := strings.TrimSpace(runPy(t, fmt.Sprintf(`
from celery import Celery
print(Celery("p", backend=%q).AsyncResult(%q).state)`, backendURL(), pickledID), nil))
	if state != "PENDING" {
		t.Errorf("refused message has state %s, want PENDING (no result)", state)
	}
}

// The seed tutorial's routing: deal1 goes to for_task1 (exchange for_task1,
// key task_a), deal2 to for_task2; a worker with -Q for_task1 runs only deal1.
func TestRedisSeedRouting(t *testing.T) {
	rc := requireRedis(t)
	suffix := uniq(t, "")
	q1, q2 := "for_task1"+suffix, "for_task2"+suffix
	cleanupQueue(t, rc, q1, q2)
	cfg := filepath.Join(t.TempDir(), "celery.yaml")
	yaml := fmt.Sprintf(`CELERY_QUEUES:
  - {name: %[1]s, exchange: %[1]s, routing_key: task_a}
  - {name: %[2]s, exchange: %[2]s, routing_key: task_b}
CELERY_ROUTES:
  app1.tasks1.deal1: {queue: %[1]s, routing_key: task_a}
`, q1, q2)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	startGoWorker(t, "-b", brokerURL(), "--result-backend", backendURL(), "--config", cfg, "-Q", q1, "-n", uniq(t, "seed")+"@%h")

	out := runPy(t, fmt.Sprintf(`
import json
from celery import Celery
from kombu import Exchange, Queue
app = Celery("seed", broker=%[1]q, backend=%[2]q)
app.conf.update(
    CELERY_QUEUES=(
        Queue(%[3]q, Exchange(%[3]q), routing_key="task_a"),
        Queue(%[4]q, Exchange(%[4]q), routing_key="task_b"),
    ),
    CELERY_ROUTES={
        "app1.tasks1.deal1": {"queue": %[3]q, "routing_key": "task_a"},
        "app1.tasks2.deal2": {"queue": %[4]q, "routing_key": "task_b"},
    },
)
r1 = app.send_task("app1.tasks1.deal1", args=("hello",))
r2 = app.send_task("app1.tasks2.deal2", args=("world",))
v = r1.get(timeout=30)
import time; time.sleep(0.5)
print(json.dumps({"deal1": v, "deal2_state": r2.state}))
`, brokerURL(), backendURL(), q1, q2), nil)
	want := `{"deal1": "hello=======", "deal2_state": "PENDING"}`
	if strings.TrimSpace(out) != want {
		t.Errorf("got %s, want %s", out, want)
	}
	if n, _ := rc.LLen(context.Background(), q2).Result(); n != 1 {
		t.Errorf("deal2 should wait in %s, queue length %d", q2, n)
	}
}
