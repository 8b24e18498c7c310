package compat_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Remote control and events as operators use them: celery inspect /
// control from Python, and Celery's event receiver, against the Go worker.
func TestRedisRemoteControlAndEvents(t *testing.T) {
	rc := requireRedis(t)
	q := uniq(t, "q")
	cleanupQueue(t, rc, q)
	node := uniq(t, "ctl") + "@compat"
	gw := startGoWorker(t, "-b", brokerURL(), "--result-backend", backendURL(), "-Q", q, "-n", node, "-c", "2", "-E")
	out := runPy(t, fmt.Sprintf(`
import json, threading, time
from celery import Celery
from celery.exceptions import TaskRevokedError
app = Celery("ctl", broker=%[1]q, backend=%[2]q)
app.conf.update(task_default_queue=%[3]q)
node = %[4]q
res = {}

seen = []
def on_event(ev):
    if ev.get("hostname") == node:
        seen.append(ev["type"])
def listen():
    with app.connection_for_read() as conn:
        recv = app.events.Receiver(conn, handlers={"*": on_event})
        try:
            recv.capture(limit=None, timeout=12, wakeup=True)
        except Exception:
            pass
listener = threading.Thread(target=listen, daemon=True)
listener.start()
time.sleep(1)

res["ping"] = app.control.ping(destination=[node], timeout=3)
insp = app.control.inspect(destination=[node], timeout=3)
res["registered"] = "tasks.add" in (insp.registered() or {}).get(node, [])

later = app.send_task("tasks.add", args=(1, 2), countdown=3)
deadline = time.time() + 5
while time.time() < deadline:
    sched = (insp.scheduled() or {}).get(node, [])
    if any(s["request"]["id"] == later.id for s in sched):
        res["scheduled"] = True
        break
    time.sleep(0.1)
app.control.revoke(later.id)
try:
    later.get(timeout=15)
except TaskRevokedError as e:
    res["revoked"] = [str(e), later.state]

long = app.send_task("tasks.sleep", args=(30,))
deadline = time.time() + 5
while time.time() < deadline:
    if any(a["id"] == long.id for a in (insp.active() or {}).get(node, [])):
        res["active"] = True
        break
    time.sleep(0.1)
app.control.revoke(long.id, terminate=True)
try:
    long.get(timeout=15)
except TaskRevokedError as e:
    res["terminated"] = [str(e), long.state]

res["add"] = app.send_task("tasks.add", args=(2, 2)).get(timeout=15)

res["time_limit"] = app.control.time_limit("tasks.sleep", soft=0.5, hard=10, reply=True, destination=[node], timeout=3)
res["time_limit_unknown"] = app.control.time_limit("tasks.nope", soft=1, reply=True, destination=[node], timeout=3)
slow = app.send_task("tasks.sleep", args=(5,))
t0 = time.time()
try:
    slow.get(timeout=15)
    res["time_limited"] = ["no error", slow.state]
except Exception as e:
    res["time_limited"] = [type(e).__name__, slow.state, time.time() - t0 < 4]
stats = (insp.stats() or {}).get(node, {})
res["stats_total_add"] = stats.get("total", {}).get("tasks.add")
res["revoked_list"] = sorted((insp.revoked() or {}).get(node, []))
res["revoked_expected"] = sorted([later.id, long.id])
listener.join(15)
res["events"] = sorted(set(seen))
print(json.dumps(res))
`, brokerURL(), backendURL(), q, node), nil)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := []any{map[string]any{node: map[string]any{"ok": "pong"}}}; !reflect.DeepEqual(got["ping"], want) {
		t.Errorf("ping: %v", got["ping"])
	}
	for _, k := range []string{"registered", "scheduled", "active"} {
		if got[k] != true {
			t.Errorf("%s: %v", k, got[k])
		}
	}
	if !reflect.DeepEqual(got["revoked"], []any{"revoked", "REVOKED"}) {
		t.Errorf("revoked scheduled task: %v", got["revoked"])
	}
	if !reflect.DeepEqual(got["terminated"], []any{"terminated", "REVOKED"}) {
		t.Errorf("terminated task: %v", got["terminated"])
	}
	if got["add"] != 4.0 || got["stats_total_add"] != 1.0 {
		t.Errorf("after revokes: add %v, stats total %v", got["add"], got["stats_total_add"])
	}
	if want := []any{map[string]any{node: map[string]any{"ok": "time limits set successfully"}}}; !reflect.DeepEqual(got["time_limit"], want) {
		t.Errorf("time_limit reply: %v", got["time_limit"])
	}
	if want := []any{map[string]any{node: map[string]any{"error": "unknown task"}}}; !reflect.DeepEqual(got["time_limit_unknown"], want) {
		t.Errorf("time_limit for an unknown task: %v", got["time_limit_unknown"])
	}
	if !reflect.DeepEqual(got["time_limited"], []any{"SoftTimeLimitExceeded", "FAILURE", true}) {
		t.Errorf("tasks.sleep(5) after time_limit soft=0.5: %v", got["time_limited"])
	}
	if !reflect.DeepEqual(got["revoked_list"], got["revoked_expected"]) {
		t.Errorf("inspect revoked %v, want %v", got["revoked_list"], got["revoked_expected"])
	}
	evs := fmt.Sprint(got["events"])
	for _, e := range []string{"worker-heartbeat", "task-received", "task-started", "task-succeeded", "task-revoked"} {
		if !strings.Contains(evs, e) {
			t.Errorf("event %s not seen; got %s", e, evs)
		}
	}
	gw.waitFor("Tasks flagged as revoked: ", 5*time.Second)
}
