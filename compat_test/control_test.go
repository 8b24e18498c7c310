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

// Celery 5.3+'s revoke_by_stamped_headers, sent as a broadcast (Debian's
// 5.2 client lacks the method, the message is the same), revokes the Go
// worker's tasks stamped with a revoked value, as stamped_headers and
// stamps headers carry them, and terminates a running one.
func TestRedisRevokeByStampedHeaders(t *testing.T) {
	rc := requireRedis(t)
	q := uniq(t, "q")
	cleanupQueue(t, rc, q)
	node := uniq(t, "stamps") + "@compat"
	gw := startGoWorker(t, "-b", brokerURL(), "--result-backend", backendURL(), "-Q", q, "-n", node)
	out := runPy(t, fmt.Sprintf(`
import json, time
from celery import Celery
from celery.exceptions import TaskRevokedError
app = Celery("stamps", broker=%[1]q, backend=%[2]q)
app.conf.update(task_default_queue=%[3]q)
node = %[4]q
insp = app.control.inspect(destination=[node], timeout=3)
res = {}
def revoke(headers, terminate=False):
    return app.control.broadcast("revoke_by_stamped_headers", reply=True, destination=[node], timeout=3,
        arguments={"headers": headers, "terminate": terminate, "signal": "TERM"})
def stamped(name, args, stamp):
    return app.send_task(name, args=args, headers={"stamped_headers": ["mystamp"], "stamps": {"mystamp": stamp}})
def outcome(r):
    try:
        return [r.get(timeout=15), r.state]
    except TaskRevokedError as e:
        return [str(e), r.state]
res["flag"] = revoke({"mystamp": "v1"})
res["revoked"] = outcome(stamped("tasks.add", (1, 2), "v1"))
res["other"] = outcome(stamped("tasks.add", (1, 2), "v2"))
res["list_form"] = revoke(["mystamp=v3"])
res["revoked_v3"] = outcome(stamped("tasks.add", (1, 2), "v3"))
long = stamped("tasks.sleep", (30,), "long")
deadline = time.time() + 5
while time.time() < deadline and not (insp.active() or {}).get(node):
    time.sleep(0.05)
res["terminate"] = revoke({"mystamp": "long"}, terminate=True)
res["terminated"] = outcome(long)
res["none"] = revoke({"mystamp": "nothing"}, terminate=True)
print(json.dumps(res))
`, brokerURL(), backendURL(), q, node), nil)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	reply := func(s string) []any { return []any{map[string]any{node: map[string]any{"ok": s}}} }
	for k, want := range map[string]any{
		"flag":       reply("headers {'mystamp': 'v1'} flagged as revoked, but not terminated"),
		"revoked":    []any{"revoked", "REVOKED"},
		"other":      []any{3.0, "SUCCESS"},
		"list_form":  reply("headers {'mystamp': 'v3'} flagged as revoked, but not terminated"),
		"revoked_v3": []any{"revoked", "REVOKED"},
		"terminate":  reply("headers defaultdict(<class 'set'>, {'mystamp': {'long'}}) revoked"),
		"terminated": []any{"terminated", "REVOKED"},
		"none":       reply("headers {'mystamp': 'nothing'} were not terminated"),
	} {
		if !reflect.DeepEqual(got[k], want) {
			t.Errorf("%s: got %v, want %v", k, got[k], want)
		}
	}
	gw.waitFor("(revoked by header: {'mystamp': 'v1'})", 5*time.Second)
}

// A Go worker that starts after a revoke learns it from the running
// workers (Celery's mingle: hello with the revoked ids) and does not run
// the task; with --without-mingle it does not ask.
func TestMingleSyncsRevokedAtStart(t *testing.T) {
	type variant struct {
		semBroker
		pythonFirst bool // the worker that knows the revoke is Python's
	}
	variants := []variant{{semBroker: semBrokers()[0], pythonFirst: true}}
	for _, b := range semBrokers() {
		variants = append(variants, variant{semBroker: b})
	}
	for _, v := range variants {
		b := v.semBroker
		name := b.name
		if v.pythonFirst {
			name += "-python-first"
		}
		t.Run(name, func(t *testing.T) {
			qa, qb := uniq(t, "qa"), uniq(t, "qb")
			useQueues(t, b, qa, qb)
			nodeA, nodeB, nodeC := uniq(t, "a")+"@compat", uniq(t, "b")+"@compat", uniq(t, "c")+"@compat"
			if v.pythonFirst {
				startPyWorker(t, map[string]string{"COMPAT_BROKER": b.url, "COMPAT_BACKEND": backendURL()}, "-Q", qa, "-n", nodeA)
			} else {
				startGoWorker(t, "-b", b.url, "--result-backend", backendURL(), "-Q", qa, "-n", nodeA)
			}
			revoked := uniq(t, "task")
			py := func(body string) map[string]any {
				t.Helper()
				out := runPy(t, fmt.Sprintf(`
import json, time
from celery import Celery
from celery.exceptions import TaskRevokedError
app = Celery("m", broker=%q, backend=%q)
res = {}
`, b.url, backendURL())+body+"\nprint(json.dumps(res))\n", nil)
				var got map[string]any
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				return got
			}
			got := py(fmt.Sprintf(`
app.control.revoke(%[1]q)
insp = app.control.inspect(destination=[%[2]q], timeout=3)
deadline = time.time() + 5
while time.time() < deadline and %[1]q not in (insp.revoked() or {}).get(%[2]q, []):
    time.sleep(0.1)
res["a"] = %[1]q in (insp.revoked() or {}).get(%[2]q, [])
`, revoked, nodeA))
			if got["a"] != true {
				t.Fatalf("the running worker did not take the revoke: %v", got)
			}
			wb := startGoWorker(t, "-b", b.url, "--result-backend", backendURL(), "-Q", qb, "-n", nodeB)
			wc := startGoWorker(t, "-b", b.url, "--result-backend", backendURL(), "-Q", qb, "-n", nodeC, "--without-mingle")
			got = py(fmt.Sprintf(`
rv = app.control.inspect(destination=[%[2]q, %[3]q], timeout=3).revoked() or {}
res["b"] = %[1]q in rv.get(%[2]q, [])
res["c"] = %[1]q in rv.get(%[3]q, [])
`, revoked, nodeB, nodeC))
			if got["b"] != true || got["c"] != false {
				t.Errorf("the revoked id is known by the mingling worker: %v, by the one started --without-mingle: %v", got["b"], got["c"])
			}
			wb.waitFor("mingle: sync complete", 5*time.Second)
			if wc.count("mingle:") != 0 {
				t.Error("the worker started --without-mingle mingled")
			}
			wc.stop(20 * time.Second)
			got = py(fmt.Sprintf(`
r = app.send_task("tasks.add", args=(1, 2), task_id=%q, queue=%q)
try:
    res["task"] = [r.get(timeout=15), r.state]
except TaskRevokedError as e:
    res["task"] = [str(e), r.state]
`, revoked, qb))
			if !reflect.DeepEqual(got["task"], []any{"revoked", "REVOKED"}) {
				t.Errorf("the revoked task on the worker that mingled: %v", got["task"])
			}
		})
	}
}
