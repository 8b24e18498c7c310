package compat_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// succeededIDs returns, per task id, how many "succeeded" lines a worker
// printed for tasks.add.
func succeededIDs(out string) map[string]int {
	re := regexp.MustCompile(`Task tasks\.add\[([0-9a-f-]+)\] succeeded in`)
	ids := map[string]int{}
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		ids[m[1]]++
	}
	return ids
}

// A Python worker and the Go worker consume the same Redis queue: every
// task runs exactly once and every result is right.
func TestRedisMixedQueueWithPythonWorker(t *testing.T) {
	rc := requireRedis(t)
	q := uniq(t, "q")
	cleanupQueue(t, rc, q)
	py := startPyWorker(t, map[string]string{"COMPAT_BROKER": brokerURL(), "COMPAT_BACKEND": backendURL()},
		"-Q", q, "-c", "2", "-n", uniq(t, "py")+"@%h")
	gw := startGoWorker(t, goWorkerArgs(t, q)...)

	const n = 2000
	calls := make([]call, n)
	for i := range calls {
		calls[i] = call{Name: "tasks.add", Args: []any{i, 1000}}
	}
	res := pyClient(t, clientSpec{Broker: brokerURL(), Backend: backendURL(), Conf: clientConf(q), Calls: calls, Timeout: 60})
	for i, r := range res {
		if r.State != "SUCCESS" || r.ValueRepr != fmt.Sprint(i+1000) {
			t.Fatalf("task %d (%s): state %s value %s", i, r.ID, r.State, r.ValueRepr)
		}
	}
	goIDs, pyIDs := succeededIDs(gw.out.String()), succeededIDs(py.out.String())
	for _, r := range res {
		if runs := goIDs[r.ID] + pyIDs[r.ID]; runs != 1 {
			t.Errorf("task %s ran %d times (go %d, python %d)", r.ID, runs, goIDs[r.ID], pyIDs[r.ID])
		}
	}
	if len(goIDs) == 0 || len(pyIDs) == 0 {
		t.Errorf("both workers should have taken work: go %d, python %d", len(goIDs), len(pyIDs))
	}
	t.Logf("go worker ran %d tasks, python worker %d", len(goIDs), len(pyIDs))
}

// With task_acks_late, a Go worker killed mid-task leaves its message in
// kombu's unacked hash; a Python worker restores it after the visibility
// timeout and runs it.
func TestRedisLateAckSurvivesKill(t *testing.T) {
	rc := requireRedis(t)
	q := uniq(t, "q")
	cleanupQueue(t, rc, q)
	cfg := filepath.Join(t.TempDir(), "celery.yaml")
	if err := os.WriteFile(cfg, []byte("task_acks_late: true\nbroker_transport_options: {visibility_timeout: 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := startGoWorker(t, goWorkerArgs(t, q, "--config", cfg)...)
	id := runPy(t, fmt.Sprintf(`
from celery import Celery
app = Celery("p", broker=%q, backend=%q)
app.conf.update(task_default_queue=%q)
print(app.send_task("tasks.sleep", args=(3,)).id)`, brokerURL(), backendURL(), q), nil)
	id = strings.TrimSpace(id)
	gw.waitFor("Task tasks.sleep["+id+"] received", 20*time.Second)
	gw.kill9()
	killed := time.Now()

	ctx := context.Background()
	entries, err := rc.HGetAll(ctx, "unacked").Result()
	if err != nil {
		t.Fatal(err)
	}
	tag := ""
	for k, v := range entries {
		if strings.Contains(v, id) {
			tag = k
		}
	}
	if tag == "" {
		t.Fatalf("task %s not in unacked after kill -9", id)
	}
	score, err := rc.ZScore(ctx, "unacked_index", tag).Result()
	if err != nil {
		t.Fatalf("task %s in unacked but not in unacked_index: %v", id, err)
	}

	// kombu 5.2 sweeps when a worker starts and then only every ~100 s:
	// start the Python worker once the entry is past the visibility
	// timeout. Its score is the record's time rounded up to the second,
	// as kombu writes it, so that is up to a second after the kill.
	pastVisibility := time.Unix(int64(score), 0).Add(2500 * time.Millisecond)
	eventually(t, 10*time.Second, "the visibility timeout to pass", func() bool {
		return time.Since(killed) > 2500*time.Millisecond && time.Now().After(pastVisibility)
	})
	startPyWorker(t, map[string]string{"COMPAT_BROKER": brokerURL(), "COMPAT_BACKEND": backendURL(),
		"COMPAT_VISIBILITY": "2", "COMPAT_ACKS_LATE": "1"}, "-Q", q, "-c", "1", "-n", uniq(t, "py")+"@%h")
	out := runPy(t, fmt.Sprintf(`
from celery import Celery
r = Celery("p", backend=%q).AsyncResult(%q)
print(r.get(timeout=90), r.state)`, backendURL(), id), nil)
	if strings.TrimSpace(out) != "3 SUCCESS" {
		t.Errorf("restored task: got %q, want \"3 SUCCESS\"", out)
	}
}
