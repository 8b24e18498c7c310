package compat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
)

// The RabbitMQ versions of the compat scenarios. Every test runs in a
// RabbitMQ vhost of its own (deleted afterwards), so queue names such as
// "celery" and "for_task1" are the real ones and no test sees another's
// queues.

// rabbitmqctl runs rabbitmqctl and returns its standard output.
func rabbitmqctl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rabbitmqctl", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// newVhost requires RabbitMQ, Python Celery and rabbitmqctl, creates a
// vhost unique to the test (guest has all permissions on it, it is deleted
// after the test) and returns the broker URL for it.
func newVhost(t *testing.T) (vhost, brokerURL string) {
	t.Helper()
	requireAMQP(t)
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		unavailable(t, "rabbitmqctl: %v", err)
	}
	vhost = uniq(t, "celery")
	rabbitmqctl(t, "-q", "add_vhost", vhost)
	t.Cleanup(func() { rabbitmqctl(t, "-q", "delete_vhost", vhost) })
	rabbitmqctl(t, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	u, err := url.Parse(amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path, u.RawPath = "/"+vhost, ""
	return vhost, u.String()
}

// queueDepths returns, per queue of vhost, its messages (ready plus
// unacknowledged) as rabbitmqctl reports them.
func queueDepths(t *testing.T, vhost string) map[string]int {
	t.Helper()
	out := rabbitmqctl(t, "-q", "list_queues", "-p", vhost, "name", "messages", "--formatter", "json")
	var rows []struct {
		Name     string `json:"name"`
		Messages int    `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("list_queues output %q: %v", out, err)
	}
	m := map[string]int{}
	for _, r := range rows {
		m[r.Name] = r.Messages
	}
	return m
}

// closeGoConnections force-closes the Go worker's connections in vhost
// (client-provided name "celerity") and returns how many it closed.
// list_connections is not scoped by -p, so the vhost column is checked.
func closeGoConnections(t *testing.T, vhost string) int {
	t.Helper()
	out := rabbitmqctl(t, "-s", "list_connections", "pid", "vhost", "name", "client_properties")
	n := 0
	for _, line := range strings.Split(out, "\n") {
		// pid, vhost, name, then client_properties in Erlang term syntax.
		f := strings.SplitN(line, "\t", 4)
		if len(f) < 4 || f[1] != vhost || !strings.Contains(f[3], `{"connection_name","celerity"}`) {
			continue
		}
		t.Logf("closing connection %s (%s)", f[0], f[2])
		rabbitmqctl(t, "-q", "close_connection", f[0], "compat test: forced close")
		n++
	}
	return n
}

// amqpWorkerArgs are the arguments for a Go worker on broker with the
// given result backend.
func amqpWorkerArgs(t *testing.T, broker, backend string, extra ...string) []string {
	return append([]string{"-b", broker, "--result-backend", backend, "-n", uniq(t, "go") + "@%h", "-c", "4"}, extra...)
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "celery.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Acceptance 2: add, kwargs, fail and an unregistered task over amqp://,
// with the Redis result backend and with rpc://.
func TestAMQPBasicTasks(t *testing.T) {
	for _, backend := range []string{"redis", "rpc"} {
		t.Run(backend, func(t *testing.T) {
			vhost, broker := newVhost(t)
			be := backendURL()
			if backend == "rpc" {
				be = "rpc://"
			}
			// A policy dead-letters what is rejected from "celery" into
			// "dlq", so a reject (not an ack) of the unregistered task is
			// visible; policies do not take part in declare equivalence.
			dlq := deadLetterQueue(t, vhost, broker, "celery")
			w := startGoWorker(t, amqpWorkerArgs(t, broker, be)...)
			res := pyClient(t, clientSpec{Broker: broker, Backend: be, Calls: []call{
				{Name: "tasks.add", Args: []any{2, 3}},
				{Name: "tasks.add", Kwargs: map[string]any{"x": 2, "y": 3}},
				{Name: "tasks.echo", Args: []any{"héllo ☃"}, Kwargs: map[string]any{"k": []any{1, "two"}}},
				{Name: "tasks.fail", Args: []any{"boom"}},
				{Name: "tasks.does_not_exist", Args: []any{1}},
				{Name: "tasks.add", Args: []any{20, 22}},
			}})
			for i, want := range []struct{ repr, typ string }{
				{"5", "int"}, {"5", "int"}, {"[['héllo ☃'], {'k': [1, 'two']}]", "list"},
			} {
				if r := res[i]; r.State != "SUCCESS" || r.ValueRepr != want.repr || r.ValueType != want.typ {
					t.Errorf("call %d: got %s %s %s (%s %s), want %s %s", i, r.State, r.ValueType, r.ValueRepr, r.ExcType, r.ExcStr, want.typ, want.repr)
				}
			}
			f := res[3]
			if f.State != "FAILURE" || f.ExcType != "ValueError" || f.ExcModule != "builtins" || f.ExcStr != "boom" {
				t.Errorf("fail: got state %s raised %s.%s(%q)", f.State, f.ExcModule, f.ExcType, f.ExcStr)
			}
			if f.Traceback == nil || !strings.Contains(*f.Traceback, "ValueError: boom") {
				t.Errorf("fail: traceback %v", f.Traceback)
			}
			if r := res[4]; r.State != "FAILURE" || r.ExcType != "NotRegistered" || !strings.Contains(r.ExcStr, "tasks.does_not_exist") {
				t.Errorf("unregistered: got state %s raised %s.%s(%q)", r.State, r.ExcModule, r.ExcType, r.ExcStr)
			}
			if r := res[5]; r.State != "SUCCESS" || r.ValueRepr != "42" {
				t.Errorf("task after the unregistered one: %+v", r)
			}
			if n := w.count("Received unregistered task of type 'tasks.does_not_exist'"); n != 1 {
				t.Errorf("unregistered log lines: %d, want 1", n)
			}
			// Everything was acked or rejected: nothing is left in (or
			// unacked from) the celery queue.
			eventually(t, 10*time.Second, "the celery queue to be empty", func() bool {
				d, ok := queueDepths(t, vhost)["celery"]
				return ok && d == 0
			})
			// Exactly the unregistered task was rejected.
			if got := dlq(); len(got) != 1 || got[0] != res[4].ID {
				t.Errorf("dead-lettered task ids %v, want only the unregistered task %s", got, res[4].ID)
			}
			if n := w.count("PRECONDITION_FAILED"); n != 0 {
				t.Errorf("worker log has %d PRECONDITION_FAILED lines", n)
			}
		})
	}
}

// deadLetterQueue sets a policy on queue in vhost that dead-letters
// rejected messages into a fresh queue "dlq", and returns a function that
// drains "dlq" and returns the task ids (header id) found there.
func deadLetterQueue(t *testing.T, vhost, broker, queue string) func() []string {
	t.Helper()
	conn, err := amqp.Dial(broker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("dlq", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("dlq", "", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	rabbitmqctl(t, "-q", "set_policy", "-p", vhost, "--apply-to", "queues", "dlx", "^"+regexp.QuoteMeta(queue)+"$", `{"dead-letter-exchange":"dlx"}`)
	return func() []string {
		t.Helper()
		var ids []string
		for {
			d, ok, err := ch.Get("dlq", true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return ids
			}
			id, _ := d.Headers["id"].(string)
			ids = append(ids, id)
		}
	}
}

const seedWorkerYAML = `task_queues:
  - {name: for_task1, exchange: for_task1, routing_key: task_a}
  - {name: for_task2, exchange: for_task2, routing_key: task_b}
`

// Acceptance 3: the seed's routing over RabbitMQ. Python publishes deal1
// and deal2 with the seed's CELERY_QUEUES/CELERY_ROUTES; the Go worker
// with -Q for_task1 runs only deal1. Both declaration orders end in the
// same topology without PRECONDITION_FAILED.
func TestAMQPSeedRouting(t *testing.T) {
	for _, order := range []string{"worker_first", "producer_first"} {
		t.Run(order, func(t *testing.T) {
			vhost, broker := newVhost(t)
			env := map[string]string{"COMPAT_BROKER": broker, "COMPAT_BACKEND": backendURL()}
			args := amqpWorkerArgs(t, broker, backendURL(), "--config", writeConfig(t, seedWorkerYAML), "-Q", "for_task1")
			var w *proc
			if order == "worker_first" {
				w = startGoWorker(t, args...)
			}
			var ids struct{ Deal1, Deal2 string }
			if err := json.Unmarshal([]byte(runPyFile(t, "amqp_seed.py", env, "publish")), &ids); err != nil {
				t.Fatal(err)
			}
			if order == "producer_first" {
				d := queueDepths(t, vhost)
				if d["for_task1"] != 1 || d["for_task2"] != 1 {
					t.Fatalf("after publishing, before the worker: queue depths %v, want one message in each", d)
				}
				w = startGoWorker(t, args...)
			}
			out := runPyFile(t, "amqp_seed.py", env, "collect", ids.Deal1, ids.Deal2)
			want := `{"deal1": "hello=======", "deal2_state": "PENDING"}`
			if strings.TrimSpace(out) != want {
				t.Errorf("got %s, want %s", out, want)
			}
			eventually(t, 10*time.Second, "for_task1 empty and deal2 waiting in for_task2", func() bool {
				d := queueDepths(t, vhost)
				return d["for_task1"] == 0 && d["for_task2"] == 1
			})
			if n := w.count("Task app1.tasks1.deal1[" + ids.Deal1 + "] succeeded"); n != 1 {
				t.Errorf("deal1 succeeded %d times in the worker log", n)
			}
			if n := w.count("app1.tasks2.deal2"); n != 0 {
				t.Errorf("the worker mentions deal2 %d times; it must not consume for_task2", n)
			}
			for _, bad := range []string{"PRECONDITION_FAILED", "inequivalent", "ERROR"} {
				if n := w.count(bad); n != 0 {
					t.Errorf("worker log has %d lines with %q", n, bad)
				}
			}
		})
	}
}

// runPyFile runs a script in testdata with arguments and returns its
// standard output.
func runPyFile(t *testing.T, script string, env map[string]string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{script}, args...)...)
	cmd.Dir = "testdata"
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python %s %s: %v\n%s", script, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// Acceptance 4: a Python worker and the Go worker share one AMQP queue;
// 2,000 tasks all come back right and each ran exactly once.
func TestAMQPMixedQueueWithPythonWorker(t *testing.T) {
	vhost, broker := newVhost(t)
	py := startPyWorker(t, map[string]string{"COMPAT_BROKER": broker, "COMPAT_BACKEND": backendURL()},
		"-Q", "celery", "-c", "2", "-n", uniq(t, "py")+"@%h")
	gw := startGoWorker(t, amqpWorkerArgs(t, broker, backendURL(), "-Q", "celery")...)

	const n = 2000
	calls := make([]call, n)
	for i := range calls {
		calls[i] = call{Name: "tasks.add", Args: []any{i, 1000}}
	}
	res := pyClient(t, clientSpec{Broker: broker, Backend: backendURL(), Calls: calls, Timeout: 60})
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
	if len(goIDs)+len(pyIDs) != n {
		t.Errorf("the workers logged %d distinct successes, want %d", len(goIDs)+len(pyIDs), n)
	}
	if len(goIDs) == 0 || len(pyIDs) == 0 {
		t.Errorf("both workers should have taken work: go %d, python %d", len(goIDs), len(pyIDs))
	}
	eventually(t, 10*time.Second, "the celery queue to be empty", func() bool {
		d, ok := queueDepths(t, vhost)["celery"]
		return ok && d == 0
	})
	t.Logf("go worker ran %d tasks, python worker %d", len(goIDs), len(pyIDs))
}

// Acceptance 5: the Go worker's connection is force-closed (twice) while
// 5,000 late-ack tasks (tasks.sleep(0.01), four at a time, so that a
// window of them is always unacked) flow. Every task ends with a SUCCESS result, the
// worker logs the loss and the reconnect and keeps consuming. A task whose
// message was unacked when the connection died is redelivered and may run
// again (at-least-once, as in Celery); its result stays one SUCCESS.
func TestAMQPConnectionLossLateAck(t *testing.T) {
	vhost, broker := newVhost(t)
	cfg := writeConfig(t, "task_acks_late: true\n")
	gw := startGoWorker(t, amqpWorkerArgs(t, broker, backendURL(), "--config", cfg)...)

	const n = 5000
	prefix := uniq(t, "lateack")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	rb := redis.NewClient(&redis.Options{Addr: redisAddr(), DB: backendDB})
	t.Cleanup(func() {
		ctx := context.Background()
		for i := 0; i < n; i += 500 {
			keys := make([]string, 0, 500)
			for _, id := range ids[i:min(i+500, n)] {
				keys = append(keys, "celery-task-meta-"+id)
			}
			rb.Del(ctx, keys...)
		}
		rb.Close()
	})
	idFile := filepath.Join(t.TempDir(), "ids.json")
	data, _ := json.Marshal(ids)
	if err := os.WriteFile(idFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	pub := startProc(t, python, []string{"amqp_publish.py", idFile}, map[string]string{"COMPAT_BROKER": broker})

	ctx := context.Background()
	// done counts the tasks with a result; it checks every present result.
	done := func() int {
		c := 0
		for i := 0; i < n; i += 1000 {
			keys := make([]string, 0, 1000)
			for _, id := range ids[i:min(i+1000, n)] {
				keys = append(keys, "celery-task-meta-"+id)
			}
			vals, err := rb.MGet(ctx, keys...).Result()
			if err != nil {
				t.Fatal(err)
			}
			for j, v := range vals {
				if v != nil {
					c++
					checkSleepResult(t, v.(string), ids[i+j])
				}
			}
		}
		return c
	}
	var closedAt []int
	for _, threshold := range []int{800, 2500} {
		eventually(t, 60*time.Second, fmt.Sprintf("%d results", threshold), func() bool { return done() >= threshold })
		at := done()
		if at == n {
			t.Fatalf("all %d tasks finished before the connection could be closed", n)
		}
		if c := closeGoConnections(t, vhost); c != 1 {
			t.Fatalf("closed %d connections named celerity, want 1", c)
		}
		closedAt = append(closedAt, at)
		eventually(t, 10*time.Second, "the worker to log the connection loss", func() bool {
			return gw.count("Connection to broker lost") == len(closedAt)
		})
	}
	deadline := time.Now().Add(90 * time.Second)
	for done() != n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out with %d of %d results; broker state:\n%s%s", done(), n,
				rabbitmqctl(t, "-q", "list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged", "consumers"),
				rabbitmqctl(t, "-q", "list_channels", "vhost", "connection", "number", "prefetch_count", "global_prefetch_count", "messages_unacknowledged", "consumer_count"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	pub.waitFor("published 5000", 30*time.Second)
	if got := gw.count("Connection to broker lost"); got != 2 {
		t.Errorf("worker logged %d connection losses, want 2", got)
	}
	if got := gw.count("Reconnected to broker"); got != 2 {
		t.Errorf("worker logged %d reconnects, want 2", got)
	}
	eventually(t, 10*time.Second, "the celery queue to be empty (everything acked)", func() bool {
		d, ok := queueDepths(t, vhost)["celery"]
		return ok && d == 0
	})
	runs := sleepSucceeded(gw.out.String())
	twice := 0
	for _, id := range ids {
		switch r := runs[id]; {
		case r == 0:
			t.Errorf("task %s has a result but the worker never logged its success", id)
		case r > 1:
			twice++
		}
	}
	t.Logf("connection closed at %v finished tasks; %d tasks ran more than once (redelivered unacked messages)", closedAt, twice)
}

// checkSleepResult checks that a stored result of tasks.sleep(0.01) is
// SUCCESS with value 0.01.
func checkSleepResult(t *testing.T, raw string, id string) {
	t.Helper()
	var m struct {
		Status string `json:"status"`
		Result any    `json:"result"`
	}
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("result of %s: %v: %s", id, err, raw)
	}
	if m.Status != "SUCCESS" || m.Result != 0.01 {
		t.Fatalf("result of %s: status %s result %v, want SUCCESS 0.01", id, m.Status, m.Result)
	}
}

// sleepSucceeded returns, per task id, how many "succeeded" lines a
// worker printed for tasks.sleep.
func sleepSucceeded(out string) map[string]int {
	re := regexp.MustCompile(`Task tasks\.sleep\[([^\]]+)\] succeeded in`)
	ids := map[string]int{}
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		ids[m[1]]++
	}
	return ids
}

// Acceptance 6: on a queue with x-max-priority 10, high-priority tasks
// published after low-priority ones run first. The queue is declared by
// Python first, or by a Go worker that is stopped before Python publishes
// (Python's declaration must then be equivalent, or publishing fails).
func TestAMQPPriority(t *testing.T) {
	for _, order := range []string{"producer_first", "worker_first"} {
		t.Run(order, func(t *testing.T) {
			vhost, broker := newVhost(t)
			env := map[string]string{"COMPAT_BROKER": broker, "COMPAT_BACKEND": backendURL()}
			cfg := writeConfig(t, "task_queues:\n  - {name: prio, exchange: prio, routing_key: prio, max_priority: 10}\n")
			args := amqpWorkerArgs(t, broker, backendURL(), "--config", cfg, "-Q", "prio", "-c", "1", "--prefetch-multiplier", "1")
			if order == "worker_first" {
				first := startGoWorker(t, args...)
				first.stop(20 * time.Second)
				if _, ok := queueDepths(t, vhost)["prio"]; !ok {
					t.Fatal("the Go worker did not declare prio")
				}
			}
			// Python declares the queue (queue_arguments x-max-priority 10) and
			// publishes five priority-1 tasks, then five priority-9 tasks.
			var ids struct{ Low, High []string }
			if err := json.Unmarshal([]byte(runPyFile(t, "amqp_priority.py", env, "publish")), &ids); err != nil {
				t.Fatal(err)
			}
			if d := queueDepths(t, vhost)["prio"]; d != 10 {
				t.Fatalf("prio holds %d messages before the worker starts, want 10", d)
			}
			gw := startGoWorker(t, args...)
			all := append(append([]string(nil), ids.High...), ids.Low...)
			out := runPyFile(t, "amqp_priority.py", env, append([]string{"collect"}, all...)...)
			if want := strings.Repeat("ok\n", len(all)); out != want {
				t.Fatalf("results: %q", out)
			}
			re := regexp.MustCompile(`Task tasks\.add\[([^\]]+)\] succeeded in`)
			var ran []string
			for _, m := range re.FindAllStringSubmatch(gw.out.String(), -1) {
				ran = append(ran, m[1])
			}
			if strings.Join(ran, ",") != strings.Join(all, ",") {
				t.Errorf("execution order\n got %v\nwant %v (the five priority-9 tasks, then the five priority-1 tasks)", ran, all)
			}
			if n := gw.count("PRECONDITION_FAILED"); n != 0 {
				t.Errorf("worker log has %d PRECONDITION_FAILED lines", n)
			}
		})
	}
}

// A quorum queue (x-queue-type quorum) declared by Python first and by the
// Go worker with the same task_queues entry: no PRECONDITION_FAILED, and
// the worker consumes it although quorum queues refuse global QoS.
func TestAMQPQuorumQueue(t *testing.T) {
	vhost, broker := newVhost(t)
	env := map[string]string{"COMPAT_BROKER": broker, "COMPAT_BACKEND": backendURL()}
	const producer = `
import os, sys
from celery import Celery
from kombu import Exchange, Queue
app = Celery("qq", broker=os.environ["COMPAT_BROKER"], backend=os.environ["COMPAT_BACKEND"])
app.conf.update(task_queues=(Queue("qq", Exchange("qq"), routing_key="qq",
                                   queue_arguments={"x-queue-type": "quorum"}),),
                task_default_queue="qq")
rs = [app.send_task("tasks.add", args=(i, 10)) for i in range(20)]
print(" ".join(repr(r.get(timeout=30)) for r in rs))
`
	cfg := writeConfig(t, "task_queues:\n  - {name: qq, exchange: qq, routing_key: qq, queue_arguments: {x-queue-type: quorum}}\n")
	// Python declares the quorum queue and publishes; then the Go worker
	// starts, declares the same queue and drains it.
	done := make(chan string, 1)
	go func() {
		cmd := exec.Command(python, "-c", producer)
		cmd.Dir = "testdata"
		cmd.Env = os.Environ()
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			out = append(out, []byte(err.Error())...)
		}
		done <- string(out)
	}()
	eventually(t, 30*time.Second, "python to declare qq and publish 20 tasks", func() bool {
		return queueDepths(t, vhost)["qq"] == 20
	})
	gw := startGoWorker(t, amqpWorkerArgs(t, broker, backendURL(), "--config", cfg, "-Q", "qq")...)
	var out string
	select {
	case out = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("python producer did not finish")
	}
	want := make([]string, 20)
	for i := range want {
		want[i] = fmt.Sprint(i + 10)
	}
	if strings.TrimSpace(out) != strings.Join(want, " ") {
		t.Errorf("results %q, want %q", out, strings.Join(want, " "))
	}
	if n := len(succeededIDs(gw.out.String())); n != 20 {
		t.Errorf("go worker ran %d tasks, want 20", n)
	}
	if n := gw.count("PRECONDITION_FAILED") + gw.count("NOT_IMPLEMENTED"); n != 0 {
		t.Errorf("worker log has %d PRECONDITION_FAILED/NOT_IMPLEMENTED lines", n)
	}
}
