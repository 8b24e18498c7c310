package compat_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// poolScript is the Python side of the pool tests: it sends control
// commands to one node, reads `inspect stats`, and checks that the pool
// really runs as many tasks.sleep at once as it says (inspect active).
const poolScript = `
import json, time
from celery import Celery
app = Celery("pool", broker=%[1]q, backend=%[2]q)
app.conf.update(task_default_queue=%[3]q)
node = %[4]q
insp = app.control.inspect(destination=[node], timeout=3)
res = {}

def stats(key):
    s = (insp.stats() or {}).get(node, {})
    res[key] = {"max-concurrency": s.get("pool", {}).get("max-concurrency"),
                "prefetch_count": s.get("prefetch_count"), "autoscaler": s.get("autoscaler")}

def ctl(key, name, **kw):
    res[key] = app.control.broadcast(name, arguments=kw, reply=True, destination=[node], timeout=3)

def run_at_once(key, n, secs):
    rs = [app.send_task("tasks.sleep", args=(secs,)) for _ in range(n)]
    peak, deadline = 0, time.time() + secs + 5
    while time.time() < deadline and not all(r.ready() for r in rs):
        peak = max(peak, len((insp.active() or {}).get(node, [])))
        time.sleep(0.1)
    res[key] = [peak, [r.get(timeout=30) for r in rs]]
`

func runPoolScript(t *testing.T, broker, q, node, steps string) map[string]any {
	t.Helper()
	out := runPy(t, fmt.Sprintf(poolScript, broker, backendURL(), q, node)+steps+"\nprint(json.dumps(res))\n", nil)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return got
}

func nodeReply(node string, v any) []any { return []any{map[string]any{node: v}} }

func checkGot(t *testing.T, got map[string]any, key string, want any) {
	t.Helper()
	if g := got[key]; !reflect.DeepEqual(g, want) {
		t.Errorf("%s: got %v, want %v", key, g, want)
	}
}

// celery control pool_grow / pool_shrink from Python resize the Go
// worker's pool and prefetch window (basic.qos on RabbitMQ), as inspect
// stats and the number of tasks running at once show.
func TestPoolGrowShrink(t *testing.T) {
	for _, b := range semBrokers() {
		t.Run(b.name, func(t *testing.T) {
			q := uniq(t, "q")
			useQueues(t, b, q)
			node := uniq(t, "pool") + "@compat"
			startGoWorker(t, "-b", b.url, "--result-backend", backendURL(), "-Q", q, "-n", node, "-c", "1",
				// One unacknowledged message per executor, acked when the
				// task is done: three tasks run at once only if the
				// broker's prefetch count grew too.
				"--prefetch-multiplier", "1", "--config", workerConfigFile(t, "task_acks_late: true\n"))
			got := runPoolScript(t, b.url, q, node, `
stats("before")
ctl("grow", "pool_grow", n=2)
stats("grown")
run_at_once("grown_run", 3, 1.5)
ctl("shrink", "pool_shrink", n=2)
stats("shrunk")
run_at_once("shrunk_run", 2, 0.5)
ctl("shrink_too_far", "pool_shrink", n=1)
ctl("autoscale", "autoscale", max=4, min=1)
`)
			pool := func(c, pf float64) map[string]any {
				return map[string]any{"max-concurrency": c, "prefetch_count": pf, "autoscaler": nil}
			}
			checkGot(t, got, "before", pool(1, 1))
			checkGot(t, got, "grow", nodeReply(node, map[string]any{"ok": "pool will grow"}))
			checkGot(t, got, "grown", pool(3, 3))
			checkGot(t, got, "grown_run", []any{3.0, []any{1.5, 1.5, 1.5}})
			checkGot(t, got, "shrink", nodeReply(node, map[string]any{"ok": "pool will shrink"}))
			checkGot(t, got, "shrunk", pool(1, 1))
			checkGot(t, got, "shrunk_run", []any{1.0, []any{0.5, 0.5}})
			checkGot(t, got, "shrink_too_far", nodeReply(node, map[string]any{
				"error": "ValueError('celerity: cannot shrink the pool below one executor (it has 1)')"}))
			checkGot(t, got, "autoscale", nodeReply(node, map[string]any{"error": "ValueError('Autoscale not enabled')"}))
		})
	}
}

// useQueues checks that broker b and the Redis result backend answer and
// removes the test's queues at cleanup (on RabbitMQ with their
// exchanges of the same name).
func useQueues(t *testing.T, b semBroker, queues ...string) {
	t.Helper()
	rc := requireRedis(t)
	if b.name != "amqp" {
		cleanupQueue(t, rc, queues...)
		return
	}
	requireAMQP(t)
	t.Cleanup(func() {
		for _, q := range queues {
			deleteAMQPQueue(q)
		}
	})
}

// deleteAMQPQueue removes a test's queue and its exchange.
func deleteAMQPQueue(q string) {
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		ch.QueueDelete(q, false, false, false)
		ch.ExchangeDelete(q, false, false)
		ch.Close()
	}
}

// A Go worker started with --autoscale 3,1 grows to 3 executors while
// tasks wait, refuses pool_grow as Celery does, and takes new bounds from
// celery control autoscale (on RabbitMQ the prefetch count follows).
func TestAutoscale(t *testing.T) {
	for _, b := range semBrokers() {
		t.Run(b.name, func(t *testing.T) {
			q := uniq(t, "q")
			useQueues(t, b, q)
			node := uniq(t, "autoscale") + "@compat"
			startGoWorker(t, "-b", b.url, "--result-backend", backendURL(), "-Q", q, "-n", node, "--autoscale", "3,1")
			got := runPoolScript(t, b.url, q, node, `
stats("before")
ctl("grow", "pool_grow", n=1)
run_at_once("run", 5, 1.5)
ctl("autoscale", "autoscale", max=6, min=2)
stats("after")
`)
			checkGot(t, got, "before", map[string]any{"max-concurrency": 1.0, "prefetch_count": 12.0,
				"autoscaler": map[string]any{"max": 3.0, "min": 1.0, "current": 1.0, "qty": 0.0}})
			checkGot(t, got, "grow", nodeReply(node, map[string]any{"error": "pool_grow is not supported with autoscale. Adjust autoscale range instead."}))
			checkGot(t, got, "run", []any{3.0, []any{1.5, 1.5, 1.5, 1.5, 1.5}})
			checkGot(t, got, "autoscale", nodeReply(node, map[string]any{"ok": "autoscale now max=6 min=2"}))
			// The pool grew to 3 for the run and has not shrunk (keepalive 30 s).
			checkGot(t, got, "after", map[string]any{"max-concurrency": 3.0, "prefetch_count": 24.0,
				"autoscaler": map[string]any{"max": 6.0, "min": 2.0, "current": 3.0, "qty": 0.0}})
		})
	}
}

// celery inspect reserved lists the tasks a busy Go worker holds for its
// executors, as it lists a Python worker's prefetched tasks.
func TestRedisInspectReservedWhileBusy(t *testing.T) {
	rc := requireRedis(t)
	q := uniq(t, "q")
	cleanupQueue(t, rc, q)
	node := uniq(t, "busy") + "@compat"
	startGoWorker(t, "-b", brokerURL(), "--result-backend", backendURL(), "-Q", q, "-n", node, "-c", "1")
	got := runPoolScript(t, brokerURL(), q, node, `
first = app.send_task("tasks.sleep", args=(2,))
deadline = time.time() + 5
while time.time() < deadline and not (insp.active() or {}).get(node):
    time.sleep(0.05)
waiting = [app.send_task("tasks.sleep", args=(0.1,)) for _ in range(3)]
seen, deadline = [], time.time() + 1.5
while time.time() < deadline and len(seen) < 3:
    seen = [r["id"] for r in (insp.reserved() or {}).get(node, [])]
    time.sleep(0.05)
res["reserved_is_waiting"] = sorted(seen) == sorted(r.id for r in waiting)
res["results"] = [r.get(timeout=15) for r in [first] + waiting]
`)
	checkGot(t, got, "reserved_is_waiting", true)
	checkGot(t, got, "results", []any{2.0, 0.1, 0.1, 0.1})
}

// celery control add_consumer / cancel_consumer from Python change the
// queues the Go worker consumes, as active_queues and the tasks sent to
// each queue show; a worker may consume no queue at all.
func TestAddCancelConsumer(t *testing.T) {
	for _, b := range semBrokers() {
		t.Run(b.name, func(t *testing.T) {
			q1, q2 := uniq(t, "q1"), uniq(t, "q2")
			useQueues(t, b, q1, q2)
			node := uniq(t, "queues") + "@compat"
			gw := startGoWorker(t, "-b", b.url, "--result-backend", backendURL(), "-Q", q1, "-n", node, "-c", "2")
			got := runPoolScript(t, b.url, q1, node, fmt.Sprintf(`
q1, q2 = %q, %q
def queues():
    return sorted(q["name"] for q in (insp.active_queues() or {}).get(node, []))
def pending_for(r, secs):
    time.sleep(secs)
    return r.state
ctl("add", "add_consumer", queue=q2)
res["after_add"] = queues()
res["on_q2"] = app.send_task("tasks.add", args=(2, 3), queue=q2).get(timeout=15)
ctl("cancel", "cancel_consumer", queue=q1)
res["after_cancel"] = queues()
late = app.send_task("tasks.add", args=(4, 5), queue=q1)
res["q1_while_cancelled"] = pending_for(late, 1.5)
ctl("cancel_last", "cancel_consumer", queue=q2)
res["none"] = queues()
ctl("readd", "add_consumer", queue=q1)
res["late"] = late.get(timeout=15)
res["final"] = queues()
`, q1, q2))
			checkGot(t, got, "add", nodeReply(node, map[string]any{"ok": "add consumer " + q2}))
			checkGot(t, got, "after_add", []any{q1, q2})
			checkGot(t, got, "on_q2", 5.0)
			checkGot(t, got, "cancel", nodeReply(node, map[string]any{"ok": "no longer consuming from " + q1}))
			checkGot(t, got, "after_cancel", []any{q2})
			checkGot(t, got, "q1_while_cancelled", "PENDING")
			checkGot(t, got, "cancel_last", nodeReply(node, map[string]any{"ok": "no longer consuming from " + q2}))
			checkGot(t, got, "none", []any{})
			checkGot(t, got, "readd", nodeReply(node, map[string]any{"ok": "add consumer " + q1}))
			checkGot(t, got, "late", 9.0)
			checkGot(t, got, "final", []any{q1})
			gw.waitFor("Started consuming from "+q2, 5e9)
			gw.waitFor("Canceling queue "+q1, 5e9)
		})
	}
}

// With worker_direct, the Go worker consumes its own "<node>.dq2" queue,
// where Python's celery.utils.worker_direct routes a task for it alone.
func TestWorkerDirect(t *testing.T) {
	for _, b := range semBrokers() {
		t.Run(b.name, func(t *testing.T) {
			q := uniq(t, "q")
			node := uniq(t, "direct") + "@compat"
			useQueues(t, b, q, node+".dq2")
			startGoWorker(t, "-b", b.url, "--result-backend", backendURL(), "-Q", q, "-n", node,
				"--config", workerConfigFile(t, "worker_direct: true\n"))
			got := runPoolScript(t, b.url, q, node, `
from celery.utils import worker_direct
res["queues"] = sorted(q["name"] for q in (insp.active_queues() or {}).get(node, []))
dq = [x for x in (insp.active_queues() or {}).get(node, []) if x["name"].endswith(".dq2")]
res["dq"] = dq and [dq[0]["exchange"]["name"], dq[0]["exchange"]["type"], dq[0]["routing_key"]]
res["direct"] = app.send_task("tasks.add", args=(20, 22), queue=worker_direct(node)).get(timeout=15)
`)
			checkGot(t, got, "queues", []any{node + ".dq2", q})
			checkGot(t, got, "dq", []any{"C.dq2", "direct", node})
			checkGot(t, got, "direct", 42.0)
		})
	}
}
