package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/transports"
	amqptransport "github.com/celerity-go/celerity/transports/amqp"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

// fakeWorker records what the node asks of it.
type fakeWorker struct {
	mu         sync.Mutex
	revoked    []string
	terminated []string
	signals    []string
	rates      map[string]string
	shutdown   chan struct{}
	once       sync.Once
}

func newFakeWorker() *fakeWorker {
	return &fakeWorker{rates: map[string]string{}, shutdown: make(chan struct{})}
}

var started = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (f *fakeWorker) Registered() []string {
	return []string{"tasks.mul", "celery.chord_unlock", "tasks.add"}
}

func (f *fakeWorker) Active() []celerity.TaskInfo {
	return []celerity.TaskInfo{{
		ID: "act-1", Name: "tasks.add", Args: []any{int64(2), int64(3)}, Kwargs: map[string]any{"z": "x"},
		TimeStart: time.Unix(1700000000, 500000000), Acknowledged: true,
		DeliveryInfo: celerity.DeliveryInfo{Exchange: "", RoutingKey: "celery", Priority: 0, Redelivered: false},
	}}
}

func (f *fakeWorker) Reserved() []celerity.TaskInfo {
	return []celerity.TaskInfo{{ID: "res-1", Name: "tasks.mul", Args: []any{}, DeliveryInfo: celerity.DeliveryInfo{RoutingKey: "celery"}}}
}

func (f *fakeWorker) Scheduled() []celerity.TaskInfo {
	return []celerity.TaskInfo{{ID: "eta-1", Name: "tasks.add", Args: []any{int64(1)}, ETA: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Priority: 6}}
}

func (f *fakeWorker) Revoke(ids []string, terminate bool, signal string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, ids...)
	var term []string
	if terminate {
		f.signals = append(f.signals, signal)
		for _, id := range ids {
			if id == "act-1" {
				term = append(term, id)
			}
		}
		f.terminated = append(f.terminated, term...)
	}
	return term
}

func (f *fakeWorker) Revoked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.revoked)
}

func (f *fakeWorker) SetRateLimit(task, rate string) error {
	if !slices.Contains(f.Registered(), task) {
		return ErrUnknownTask
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rates[task] = rate
	return nil
}

func (f *fakeWorker) Stats() celerity.Stats {
	return celerity.Stats{Hostname: "x", PID: 4242, Started: started, Concurrency: 8, Prefetch: 32, Active: 1, Processed: 5,
		Total: map[string]int64{"tasks.add": 3, "tasks.mul": 2}}
}

func (f *fakeWorker) Queues() []transports.Queue {
	return []transports.Queue{{Name: "celery", Durable: true}}
}

func (f *fakeWorker) Shutdown() { f.once.Do(func() { close(f.shutdown) }) }

type fakeEvents struct {
	mu        sync.Mutex
	enabled   bool
	heartbeat int
}

func (e *fakeEvents) EnableTaskEvents() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	was := e.enabled
	e.enabled = true
	return !was
}
func (e *fakeEvents) DisableTaskEvents() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	was := e.enabled
	e.enabled = false
	return was
}
func (e *fakeEvents) SendHeartbeat() { e.mu.Lock(); e.heartbeat++; e.mu.Unlock() }

func randHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// logSink collects log lines.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}
func (l *logSink) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

func python(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import celery").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python celery unavailable: %v", err)
		}
		t.Skipf("python celery unavailable: %v", err)
	}
	return py
}

func skipOrFail(t *testing.T, format string, a ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, a...)
	}
	t.Skipf(format, a...)
}

func redisTransport(t *testing.T) (transports.Transport, string, string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		skipOrFail(t, "redis not reachable: %v", err)
	}
	prefix := "celerity-test:control:" + randHex() + ":"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr, err := redistransport.New(ctx, "redis://127.0.0.1:6379/0", redistransport.Options{GlobalKeyprefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tr.Close()
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
		defer c.Close()
		keys, _ := c.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	return tr, "redis://127.0.0.1:6379/0", prefix
}

func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
	}
}

func amqpTransport(t *testing.T) (transports.Transport, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", "127.0.0.1:5672", time.Second)
	if err != nil {
		skipOrFail(t, "RabbitMQ not reachable: %v", err)
	}
	conn.Close()
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		skipOrFail(t, "rabbitmqctl not found")
	}
	vhost := "celerity_control_" + randHex()
	rabbitmqctl(t, "add_vhost", vhost)
	t.Cleanup(func() { rabbitmqctl(t, "delete_vhost", vhost) })
	rabbitmqctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	url := "amqp://guest:guest@127.0.0.1:5672/" + vhost
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := amqptransport.New(ctx, url, amqptransport.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, url
}

// startNode runs a node until the test ends.
func startNode(t *testing.T, tr transports.Transport, hostname string, w Worker, ev Events, logs io.Writer) *Node {
	t.Helper()
	n := New(tr, hostname, w, Options{
		Events: ev, Conf: map[string]any{"broker_url": "x", "worker_concurrency": int64(8), "__secret": 1},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return n
}

// waitSubscribed publishes nothing; it waits until the node's queue/
// binding exists by polling a Go-side ping through the same broker.
func runPy(t *testing.T, args ...string) map[string]any {
	t.Helper()
	py := python(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"testdata/pyclient.py"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pyclient: %v\n%s", err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("pyclient output: %v\n%s", err, out)
	}
	return res
}

// reply returns the single node reply of a call result ([{node: reply}]).
func reply(t *testing.T, res map[string]any, key, node string) any {
	t.Helper()
	switch v := res[key].(type) {
	case []any:
		if len(v) != 1 {
			t.Fatalf("%s: %d replies: %v", key, len(v), v)
		}
		return v[0].(map[string]any)[node]
	case map[string]any: // inspect() results are {node: reply}
		r, ok := v[node]
		if !ok {
			t.Fatalf("%s: no reply from %s: %v", key, node, v)
		}
		return r
	}
	t.Fatalf("%s: unexpected %T %v", key, res[key], res[key])
	return nil
}

func jsonEq(t *testing.T, what string, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("%s:\n got %s\nwant %s", what, gb, wb)
	}
}

func checkPythonSession(t *testing.T, res map[string]any, node string, w *fakeWorker, ev *fakeEvents, logs *logSink) {
	t.Helper()
	jsonEq(t, "ping", res["ping"], `[{"`+node+`": {"ok": "pong"}}]`)
	st := reply(t, res, "stats", node).(map[string]any)
	jsonEq(t, "stats.total", st["total"], `{"tasks.add": 3, "tasks.mul": 2}`)
	jsonEq(t, "stats.pool", st["pool"], `{"max-concurrency": 8, "processes": [4242], "max-tasks-per-child": "N/A", "put-guarded-by-semaphore": false, "timeouts": [0, 0], "writes": "N/A"}`)
	if st["pid"] != float64(4242) || st["prefetch_count"] != float64(32) {
		t.Errorf("stats pid/prefetch: %v %v", st["pid"], st["prefetch_count"])
	}
	if up, _ := st["uptime"].(float64); up < 1000 {
		t.Errorf("stats uptime %v", st["uptime"])
	}
	if _, isStr := st["clock"].(string); !isStr {
		t.Errorf("stats clock %T", st["clock"])
	}
	if ru, _ := st["rusage"].(map[string]any); ru == nil || ru["maxrss"] == nil {
		t.Errorf("stats rusage %v", st["rusage"])
	}
	jsonEq(t, "registered", reply(t, res, "registered", node), `["tasks.add", "tasks.mul"]`)
	jsonEq(t, "active", reply(t, res, "active", node), `[{"id": "act-1", "name": "tasks.add", "args": [2, 3], "kwargs": {"z": "x"}, "type": "tasks.add", "hostname": "`+node+`", "time_start": 1700000000.5, "acknowledged": true, "delivery_info": {"exchange": "", "routing_key": "celery", "priority": 0, "redelivered": false}, "worker_pid": `+jsonNum(os.Getpid())+`}]`)
	act := reply(t, res, "active_safe", node).([]any)[0].(map[string]any)
	if act["args"] != "(2, 3)" || act["kwargs"] != "{'z': 'x'}" {
		t.Errorf("active(safe=True) args %v kwargs %v", act["args"], act["kwargs"])
	}
	jsonEq(t, "reserved", reply(t, res, "reserved", node), `[{"id": "res-1", "name": "tasks.mul", "args": [], "kwargs": {}, "type": "tasks.mul", "hostname": "`+node+`", "time_start": null, "acknowledged": false, "delivery_info": {"exchange": "", "routing_key": "celery", "priority": 0, "redelivered": false}, "worker_pid": null}]`)
	sch := reply(t, res, "scheduled", node).([]any)[0].(map[string]any)
	if sch["eta"] != "2030-01-01T00:00:00+00:00" || sch["priority"] != float64(6) || sch["request"].(map[string]any)["id"] != "eta-1" {
		t.Errorf("scheduled: %v", sch)
	}
	q := reply(t, res, "active_queues", node).([]any)[0].(map[string]any)
	if q["name"] != "celery" || q["routing_key"] != "celery" || q["exchange"].(map[string]any)["type"] != "direct" || q["durable"] != true {
		t.Errorf("active_queues: %v", q)
	}
	jsonEq(t, "conf", reply(t, res, "conf", node), `{"broker_url": "x", "worker_concurrency": 8}`)
	qt := reply(t, res, "query_task", node).(map[string]any)
	if e, _ := qt["act-1"].([]any); len(qt) != 1 || len(e) != 2 || e[0] != "active" {
		t.Errorf("query_task: %v", qt)
	}
	if c, _ := reply(t, res, "clock", node).(map[string]any); c == nil || c["clock"].(float64) < 1 {
		t.Errorf("clock: %v", c)
	}
	jsonEq(t, "revoke reply", reply(t, res, "revoke_reply", node), `{"ok": "tasks rev-2, rev-3 flagged as revoked"}`)
	jsonEq(t, "terminate reply", reply(t, res, "terminate_reply", node), `{"ok": "terminate: act-1"}`)
	// The cast revoke reached the worker before "revoked" was asked.
	rv := reply(t, res, "revoked", node).([]any)
	if len(rv) != 4 || rv[0] != "rev-1" || rv[1] != "rev-2" || rv[2] != "rev-3" || rv[3] != "act-1" {
		t.Errorf("revoked: %v", rv)
	}
	jsonEq(t, "rate_limit", reply(t, res, "rate_limit", node), `{"ok": "new rate limit set successfully"}`)
	jsonEq(t, "rate_limit unknown", reply(t, res, "rate_limit_unknown", node), `{"error": "unknown task"}`)
	jsonEq(t, "rate_limit bad", reply(t, res, "rate_limit_bad", node), `{"error": "Invalid rate limit string: ValueError(\"could not convert string to float: 'abc'\")"}`)
	jsonEq(t, "unknown", reply(t, res, "unknown", node), `{"error": "KeyError('no_such_command')"}`)
	jsonEq(t, "other destination", res["other_dest"], `[]`)
	jsonEq(t, "glob", res["glob"], `[{"`+node+`": {"ok": "pong"}}]`)
	jsonEq(t, "glob miss", res["glob_miss"], `[]`)
	jsonEq(t, "enable_events", reply(t, res, "enable_events", node), `{"ok": "task events enabled"}`)
	h := reply(t, res, "hello", node).(map[string]any)
	if _, isNum := h["clock"].(float64); !isNum {
		t.Errorf("hello clock: %v", h)
	}
	if e, _ := h["revoked"].(map[string]any)["mingle-1"].([]any); len(e) != 2 || e[1] != "mingle-1" {
		t.Errorf("hello revoked: %v", h["revoked"])
	}
	if m := res["mingle_merged"].([]any); !slices.Contains(m, any("mingle-1")) || !slices.Contains(m, any("act-1")) {
		t.Errorf("Celery did not merge our hello reply: %v", m)
	}
	pg := reply(t, res, "pool_grow", node).(map[string]any)
	if e, _ := pg["error"].(string); !strings.HasPrefix(e, "NotImplementedError(") {
		t.Errorf("pool_grow: %v", pg)
	}

	w.mu.Lock()
	if w.rates["tasks.add"] != "10/m" || !slices.Equal(w.signals, []string{"SIGKILL"}) || !slices.Equal(w.terminated, []string{"act-1"}) {
		t.Errorf("worker state: rates %v signals %v terminated %v", w.rates, w.signals, w.terminated)
	}
	w.mu.Unlock()
	select {
	case <-w.shutdown:
	case <-time.After(5 * time.Second):
		t.Error("shutdown command did not reach the worker")
	}
	ev.mu.Lock()
	if !ev.enabled {
		t.Error("enable_events did not enable events")
	}
	ev.mu.Unlock()
	if l := logs.String(); !strings.Contains(l, "pidbox command error: KeyError('no_such_command')") {
		t.Errorf("unknown command not logged:\n%s", l)
	}
}

func jsonNum(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestPythonClientRedis(t *testing.T) {
	python(t)
	tr, url, prefix := redisTransport(t)
	node := "gonode-" + randHex() + "@test"
	w, ev, logs := newFakeWorker(), &fakeEvents{}, &logSink{}
	startNode(t, tr, node, w, ev, logs)
	waitBinding(t, tr, prefix, node)
	res := runPy(t, url, prefix, node)
	checkPythonSession(t, res, node, w, ev, logs)
}

func TestPythonClientAMQP(t *testing.T) {
	python(t)
	tr, url := amqpTransport(t)
	node := "gonode-" + randHex() + "@test"
	w, ev, logs := newFakeWorker(), &fakeEvents{}, &logSink{}
	n := startNode(t, tr, node, w, ev, logs)
	waitQueue(t, url, n.QueueName())
	res := runPy(t, url, "", node)
	checkPythonSession(t, res, node, w, ev, logs)
}

// TestCLIInspectPing runs `celery inspect ping` against the node.
func TestCLIInspectPing(t *testing.T) {
	py := python(t)
	tr, url, prefix := redisTransport(t)
	node := "gonode-" + randHex() + "@test"
	startNode(t, tr, node, newFakeWorker(), nil, io.Discard)
	waitBinding(t, tr, prefix, node)
	dir := t.TempDir()
	app := "from celery import Celery\napp = Celery('cliapp', broker=" + pyQuote(url) + ")\napp.conf.broker_transport_options = {'global_keyprefix': " + pyQuote(prefix) + "}\n"
	if err := os.WriteFile(dir+"/cliapp.py", []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-m", "celery", "-A", "cliapp", "inspect", "ping", "-d", node, "--timeout", "3")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("celery inspect ping: %v\n%s", err, out)
	}
	s := string(out)
	if !regexp.MustCompile(`->\s+`+regexp.QuoteMeta(node)+`: OK`).MatchString(s) || !strings.Contains(s, "pong") || !strings.Contains(s, "1 node online.") {
		t.Errorf("celery inspect ping output:\n%s", s)
	}
}

func pyQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// waitBinding waits until the node's pidbox binding exists (it is added
// before PSUBSCRIBE returns, so the node then hears broadcasts).
func waitBinding(t *testing.T, tr transports.Transport, prefix, node string) {
	t.Helper()
	c := tr.(*redistransport.Transport).Client()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := c.SIsMember(context.Background(), prefix+"_kombu.binding.celery.pidbox", "\x06\x16\x06\x16"+node+".celery.pidbox").Result()
		if err == nil && ok {
			n, err := c.PubSubNumPat(context.Background()).Result()
			if err == nil && n > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("node never subscribed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitQueue(t *testing.T, url, queue string) {
	t.Helper()
	vhost := url[strings.LastIndex(url, "/")+1:]
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := exec.Command("rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "consumers").CombinedOutput()
		if strings.Contains(string(out), queue+"\t1") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node queue %s never consumed:\n%s", queue, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
