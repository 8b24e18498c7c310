package events

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/transports"
	amqptransport "github.com/celerity-go/celerity/transports/amqp"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

func randHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func skipOrFail(t *testing.T, format string, a ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, a...)
	}
	t.Skipf(format, a...)
}

// recordingTransport captures publishes (only Publish is used).
type recordingTransport struct {
	transports.Transport
	mu   sync.Mutex
	msgs []published
	gate chan struct{} // when non-nil, Publish waits on it
}

type published struct {
	exchange, rk string
	m            *kombu.Message
}

func (r *recordingTransport) Publish(ctx context.Context, ex, rk string, m *kombu.Message) error {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, published{ex, rk, m})
	return nil
}

func (r *recordingTransport) snapshot() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]published(nil), r.msgs...)
}

func decodeBody(t *testing.T, m *kombu.Message) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(m.Body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestUTCOffset(t *testing.T) {
	for _, tc := range []struct {
		zone string
		off  int
		want int64
	}{{"UTC", 0, 0}, {"CET", 3600, -1}, {"EST", -5 * 3600, 5}, {"IST", 5*3600 + 1800, -6}, {"NST", -(3*3600 + 1800), 3}} {
		got := UTCOffset(time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone(tc.zone, tc.off)))
		if got != tc.want {
			t.Errorf("%s: %d, want %d", tc.zone, got, tc.want)
		}
	}
}

func TestTaskEventFields(t *testing.T) {
	rt := &recordingTransport{}
	clock := &Clock{}
	d := New(rt, Options{Hostname: "go@h", Clock: clock, TaskEvents: true, Freq: time.Hour,
		Stats: func() celerity.Stats { return celerity.Stats{Active: 2, Processed: 7} }})
	at := time.Unix(1795680011, 132899800).UTC()
	req := &celerity.Request{ID: "id-1", Name: "tasks.add", Args: []any{int64(20), int64(22)}, Kwargs: map[string]any{},
		RootID: "id-1", Retries: 1, ETA: time.Date(2026, 11, 26, 7, 55, 52, 549680000, time.UTC),
		Message: &protocolv2.Task{ArgsRepr: "(20, 22)", KwargsRepr: "{}"}}
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskReceived, Time: at, TaskID: "id-1", TaskName: "tasks.add", Request: req})
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskSucceeded, Time: at, TaskID: "id-1", Result: int64(42), Runtime: 1500 * time.Millisecond})
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskFailed, Time: at, TaskID: "id-2", Exception: "NotRegistered('x')"})
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskRevoked, Time: at, TaskID: "id-3", Expired: true})
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskRejected, Time: at, TaskID: "id-4", Requeue: true})
	d.DisableTaskEvents()
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskStarted, Time: at, TaskID: "id-5"})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for d.Sent() < 6 { // online + 5 task events
		if time.Now().After(deadline) {
			t.Fatalf("sent %d", d.Sent())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var evs []map[string]any
	var rks []string
	for _, p := range rt.snapshot() {
		if p.exchange != "celeryev" || p.m.Headers["hostname"] != "go@h" || p.m.Properties.DeliveryMode != 1 || p.m.ContentType != "application/json" {
			t.Errorf("message metadata: %q %+v", p.exchange, p.m)
		}
		rks = append(rks, p.rk)
		switch b := decodeBody(t, p.m).(type) {
		case map[string]any:
			evs = append(evs, b)
		case []any:
			for _, e := range b {
				evs = append(evs, e.(map[string]any))
			}
		}
	}
	if rks[0] != "worker.online" || rks[len(rks)-1] != "worker.offline" {
		t.Errorf("routing keys %v", rks)
	}
	if len(evs) != 7 {
		t.Fatalf("%d events: %v", len(evs), evs)
	}
	want := []string{
		`{"type": "task-received", "uuid": "id-1", "name": "tasks.add", "args": "(20, 22)", "kwargs": "{}", "root_id": "id-1", "parent_id": null, "retries": 1, "eta": "2026-11-26T07:55:52.549680+00:00", "expires": null}`,
		`{"type": "task-succeeded", "uuid": "id-1", "result": "42", "runtime": 1.5}`,
		`{"type": "task-failed", "uuid": "id-2", "exception": "NotRegistered('x')"}`,
		`{"type": "task-revoked", "uuid": "id-3", "terminated": false, "signum": null, "expired": true}`,
		`{"type": "task-rejected", "uuid": "id-4", "requeue": true}`,
	}
	for i, w := range want {
		ev := evs[i+1]
		var wm map[string]any
		if err := json.Unmarshal([]byte(w), &wm); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"hostname", "utcoffset", "pid", "clock", "timestamp"} {
			if _, ok := ev[k]; !ok {
				t.Errorf("%s: missing %s", wm["type"], k)
			}
			delete(ev, k)
		}
		gb, _ := json.Marshal(ev)
		wb, _ := json.Marshal(wm)
		if string(gb) != string(wb) {
			t.Errorf("event %d:\n got %s\nwant %s", i, gb, wb)
		}
	}
	if evs[1]["timestamp"] != nil {
		t.Error("common fields not stripped")
	}
	on := evs[0]
	if on["type"] != "worker-online" || on["active"] != float64(2) || on["processed"] != float64(7) || on["freq"] != 3600.0 ||
		on["sw_ident"] != SoftwareIdent || on["sw_sys"] == "" || len(on["loadavg"].([]any)) != 3 || on["pid"] != float64(os.Getpid()) {
		t.Errorf("worker-online: %v", on)
	}
	// Lamport clock: strictly increasing across the events, shared.
	if clock.Value() < 7 {
		t.Errorf("clock %d", clock.Value())
	}
}

// TestNeverBlocks: a stuck broker must not block TaskEvent; overflow is
// counted.
func TestNeverBlocks(t *testing.T) {
	rt := &recordingTransport{gate: make(chan struct{})}
	d := New(rt, Options{Hostname: "go@h", TaskEvents: true, Buffer: 8})
	done := make(chan struct{})
	go func() {
		for i := 0; i < 100; i++ {
			d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskStarted, TaskID: "x"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("TaskEvent blocked")
	}
	if d.Dropped() != 92 {
		t.Errorf("dropped %d, want 92", d.Dropped())
	}
}

func TestEnableDisable(t *testing.T) {
	d := New(&recordingTransport{}, Options{Hostname: "h"})
	if d.TaskEventsEnabled() || !d.EnableTaskEvents() || d.EnableTaskEvents() || !d.TaskEventsEnabled() ||
		!d.DisableTaskEvents() || d.DisableTaskEvents() {
		t.Error("enable/disable transitions wrong")
	}
	if d.Send("task-started", nil) {
		t.Error("task event queued while disabled")
	}
	if !d.Send("custom-thing", map[string]any{"a": 1}) {
		t.Error("custom event not queued")
	}
}

// --- real Celery receiver ---

func python(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import celery").Run(); err != nil {
		skipOrFail(t, "python celery unavailable: %v", err)
	}
	return py
}

func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
	}
}

func TestPythonReceiverRedis(t *testing.T) {
	python(t)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		skipOrFail(t, "redis not reachable: %v", err)
	}
	prefix := "celerity-test:events:" + randHex() + ":"
	t.Cleanup(func() {
		keys, _ := c.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	url := "redis://127.0.0.1:6379/0"
	tr, err := redistransport.New(context.Background(), url, redistransport.Options{GlobalKeyprefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	runReceiver(t, tr, url, prefix)
}

func TestPythonReceiverAMQP(t *testing.T) {
	python(t)
	conn, err := net.DialTimeout("tcp", "127.0.0.1:5672", time.Second)
	if err != nil {
		skipOrFail(t, "RabbitMQ not reachable: %v", err)
	}
	conn.Close()
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		skipOrFail(t, "rabbitmqctl not found")
	}
	vhost := "celerity_events_" + randHex()
	rabbitmqctl(t, "add_vhost", vhost)
	t.Cleanup(func() { rabbitmqctl(t, "delete_vhost", vhost) })
	rabbitmqctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	url := "amqp://guest:guest@127.0.0.1:5672/" + vhost
	tr, err := amqptransport.New(context.Background(), url, amqptransport.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	runReceiver(t, tr, url, "")
}

func runReceiver(t *testing.T, tr transports.Transport, url, prefix string) {
	host := "goev-" + randHex() + "@test"
	taskID := "tid-" + randHex()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", "testdata/pyreceiver.py", url, prefix, host, taskID)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	// Probe with a separate dispatcher until the receiver hears us, so
	// the real one's worker-online is not lost (fanout has no backlog).
	probe := New(tr, Options{Hostname: "probe@test", Freq: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	pctx, pcancel := context.WithCancel(ctx)
	go probe.Run(pctx)
	waitLine := func(prefix string, during func()) string {
		t.Helper()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("receiver exited before %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return strings.TrimSpace(strings.TrimPrefix(l, prefix))
				}
			case <-tick.C:
				if during != nil {
					during()
				}
			case <-ctx.Done():
				t.Fatalf("timeout waiting for %q", prefix)
			}
		}
	}
	waitLine("SUBSCRIBED", func() { probe.Send("probe-ping", nil) })
	pcancel()

	d := New(tr, Options{Hostname: host, Freq: 500 * time.Millisecond, TaskEvents: true,
		Stats: func() celerity.Stats { return celerity.Stats{Active: 1, Processed: 3} }})
	dctx, dcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx) }()
	req := &celerity.Request{ID: taskID, Name: "tasks.add", Args: []any{int64(2), int64(3)}, Kwargs: map[string]any{"k": "v"}, RootID: taskID}
	now := time.Now()
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskReceived, Time: now, TaskID: taskID, TaskName: "tasks.add", Request: req})
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskStarted, Time: now, TaskID: taskID, TaskName: "tasks.add", Request: req})
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskSucceeded, Time: now, TaskID: taskID, TaskName: "tasks.add", Request: req, Result: int64(5), Runtime: 250 * time.Millisecond})
	freq := &celerity.Request{ID: "fail-" + taskID, Name: "tasks.add", RootID: "fail-" + taskID}
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskReceived, Time: now, TaskID: freq.ID, TaskName: "tasks.add", Request: freq})
	d.TaskEvent(&celerity.TaskEvent{Type: celerity.EventTaskFailed, Time: now, TaskID: freq.ID, TaskName: "tasks.add", Request: freq, Exception: "ValueError('boom')", Traceback: "Traceback..."})

	var snap map[string]any
	if err := json.Unmarshal([]byte(waitLine("STATE ", nil)), &snap); err != nil {
		t.Fatal(err)
	}
	dcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var report struct {
		Events []map[string]any `json:"events"`
		Alive  bool             `json:"alive_after_offline"`
	}
	if err := json.Unmarshal([]byte(waitLine("REPORT ", nil)), &report); err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, ev := range report.Events {
		types[ev["type"].(string)]++
		if ev["hostname"] != host || ev["pid"] != float64(os.Getpid()) {
			t.Errorf("event %v", ev)
		}
	}
	for _, typ := range []string{"worker-online", "worker-heartbeat", "worker-offline", "task-received", "task-started", "task-succeeded", "task-failed"} {
		if types[typ] == 0 {
			t.Errorf("receiver never got %s (got %v)", typ, types)
		}
	}
	if report.Alive {
		t.Error("worker still alive in State after worker-offline")
	}

	wantSnap := map[string]any{
		"worker_alive": true, "worker_active": 1.0, "worker_processed": 3.0,
		"task_state": "SUCCESS", "task_name": "tasks.add", "task_args": "(2, 3)", "task_kwargs": "{'k': 'v'}",
		"task_result": "5", "task_runtime": 0.25, "task_worker": host,
		"failed_state": "FAILURE", "failed_exception": "ValueError('boom')",
	}
	for k, v := range wantSnap {
		if snap[k] != v {
			t.Errorf("State %s = %#v, want %#v", k, snap[k], v)
		}
	}
	if la, _ := snap["worker_loadavg"].([]any); len(la) != 3 {
		t.Errorf("loadavg %v", snap["worker_loadavg"])
	}
}
