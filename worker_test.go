package celerity_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/resultstore"
	"github.com/celerity-go/celerity/transports/memory"
)

// memBackend keeps stored metas in memory; gate, when set, blocks Store
// until it is closed.
type memBackend struct {
	mu     sync.Mutex
	states map[string][]*resultstore.Meta
	gate   chan struct{}
}

func newMemBackend() *memBackend { return &memBackend{states: map[string][]*resultstore.Meta{}} }

func (b *memBackend) Store(ctx context.Context, metas ...*resultstore.Meta) error {
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range metas {
		b.states[m.TaskID] = append(b.states[m.TaskID], m)
	}
	return nil
}

func (b *memBackend) Get(ctx context.Context, id string) (map[string]any, error) { return nil, nil }
func (b *memBackend) Close() error                                               { return nil }

// history returns the states stored for id, in order.
func (b *memBackend) history(id string) []*resultstore.Meta {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*resultstore.Meta(nil), b.states[id]...)
}

func (b *memBackend) last(id string) *resultstore.Meta {
	h := b.history(id)
	if len(h) == 0 {
		return nil
	}
	return h[len(h)-1]
}

type harness struct {
	t      *testing.T
	tr     *memory.Transport
	be     *memBackend
	w      *celerity.Worker
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, cfg celerity.Config, register func(w *celerity.Worker)) *harness {
	t.Helper()
	tr := memory.New()
	be := newMemBackend()
	if cfg.Queues == nil {
		cfg.Queues = []string{"q"}
	}
	w, err := celerity.NewWorker(tr, be, cfg)
	if err != nil {
		t.Fatal(err)
	}
	register(w)
	return &harness{t: t, tr: tr, be: be, w: w}
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	go func() { h.done <- h.w.Run(ctx, context.Background()) }()
	h.t.Cleanup(func() { h.stop() })
}

// stop shuts the worker down warmly and waits for Run to return.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("worker did not stop")
	}
}

func (h *harness) publish(name string, args []any, mod func(*protocolv2.Task)) string {
	h.t.Helper()
	id := protocolv2.NewID()
	task := &protocolv2.Task{ID: id, Name: name, Args: args, RootID: id, UTC: true}
	if mod != nil {
		mod(task)
	}
	m, err := protocolv2.Encode(task, protocolv2.EncodeOptions{RoutingKey: "q"})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.tr.Publish(context.Background(), "", "q", m); err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) wait(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) waitState(id, state string) *resultstore.Meta {
	h.t.Helper()
	var m *resultstore.Meta
	h.wait(id+" "+state, func() bool { m = h.be.last(id); return m != nil && m.Status == state })
	return m
}

type addArgs struct {
	X int `celery:"x"`
	Y int `celery:"y"`
}

func registerAdd(w *celerity.Worker) {
	if err := celerity.Register(w, "t.add", func(_ context.Context, t *celerity.Task[addArgs]) (int, error) {
		return t.Args.X + t.Args.Y, nil
	}); err != nil {
		panic(err)
	}
}

func TestWorkerRunsTaskAndAcks(t *testing.T) {
	h := newHarness(t, celerity.Config{Concurrency: 2}, registerAdd)
	h.start()
	id := h.publish("t.add", []any{int64(2), int64(3)}, nil)
	m := h.waitState(id, resultstore.Success)
	if m.Result != 5 {
		t.Errorf("result %v (%T), want 5", m.Result, m.Result)
	}
	if len(m.Children) != 0 || m.DateDone.IsZero() || m.Traceback != "" {
		t.Errorf("meta %+v", m)
	}
	h.wait("ack", func() bool { return h.tr.Broker().Unacked() == 0 })
	if n := h.tr.Broker().Len("q"); n != 0 {
		t.Errorf("queue length %d", n)
	}
}

// With task_acks_late the message stays unacknowledged until its result
// is stored.
func TestWorkerLateAckWaitsForResult(t *testing.T) {
	h := newHarness(t, celerity.Config{Concurrency: 1, AcksLate: true}, registerAdd)
	h.be.gate = make(chan struct{})
	h.start()
	id := h.publish("t.add", []any{int64(1), int64(1)}, nil)
	h.wait("delivery", func() bool { return h.tr.Broker().Unacked() == 1 })
	// The handler has run (it is trivial) but the store is blocked: the
	// message must still be unacked.
	time.Sleep(50 * time.Millisecond)
	if n := h.tr.Broker().Unacked(); n != 1 {
		t.Fatalf("message settled before its result was stored (unacked %d)", n)
	}
	close(h.be.gate)
	h.waitState(id, resultstore.Success)
	h.wait("late ack", func() bool { return h.tr.Broker().Unacked() == 0 })
}

func TestWorkerUnknownTaskIsRejectedWithNotRegistered(t *testing.T) {
	h := newHarness(t, celerity.Config{Concurrency: 1, ResultExtended: true}, registerAdd)
	h.start()
	bad := h.publish("t.nope", []any{int64(1)}, nil)
	good := h.publish("t.add", []any{int64(1), int64(2)}, nil)
	m := h.waitState(bad, resultstore.Failure)
	exc, ok := m.Result.(*resultstore.ExceptionInfo)
	if !ok || exc.Type != "NotRegistered" || exc.Module != "celery.exceptions" || exc.Message[0] != "t.nope" {
		t.Errorf("result %#v", m.Result)
	}
	if m.Extended == nil || !m.Extended.Unknown {
		t.Errorf("extended fields should all be null: %+v", m.Extended)
	}
	h.waitState(good, resultstore.Success)
	h.wait("settled", func() bool { return h.tr.Broker().Unacked() == 0 && h.tr.Broker().Len("q") == 0 })
}

func TestWorkerPanicAndErrorsBecomeFailures(t *testing.T) {
	h := newHarness(t, celerity.Config{Concurrency: 1}, func(w *celerity.Worker) {
		w.Handle("t.panic", func(context.Context, *celerity.Request) (any, error) { panic("kaboom") })
		w.Handle("t.plain", func(context.Context, *celerity.Request) (any, error) { return nil, errors.New("plain go error") })
		w.Handle("t.key", func(context.Context, *celerity.Request) (any, error) { return nil, celerity.KeyError("k") })
	})
	h.start()
	p := h.publish("t.panic", nil, nil)
	e := h.publish("t.plain", nil, nil)
	k := h.publish("t.key", nil, nil)
	m := h.waitState(p, resultstore.Failure)
	if !strings.Contains(m.Traceback, "kaboom") || !strings.Contains(m.Traceback, "goroutine") {
		t.Errorf("panic traceback lacks the Go stack:\n%s", m.Traceback)
	}
	m = h.waitState(e, resultstore.Failure)
	if exc := m.Result.(*resultstore.ExceptionInfo); exc.Type != "Exception" || exc.Module != "builtins" || exc.Message[0] != "plain go error" {
		t.Errorf("plain error stored as %#v", exc)
	}
	m = h.waitState(k, resultstore.Failure)
	if exc := m.Result.(*resultstore.ExceptionInfo); exc.Type != "KeyError" || exc.Message[0] != "k" {
		t.Errorf("KeyError stored as %#v", exc)
	}
}

func TestWorkerTrackStartedThenSuccess(t *testing.T) {
	h := newHarness(t, celerity.Config{Concurrency: 1, TrackStarted: true, Hostname: "celery@test"}, registerAdd)
	h.start()
	id := h.publish("t.add", []any{int64(1), int64(2)}, nil)
	h.waitState(id, resultstore.Success)
	hist := h.be.history(id)
	if len(hist) != 2 || hist[0].Status != resultstore.Started {
		t.Fatalf("states %v", hist)
	}
	if !hist[0].DateDone.IsZero() {
		t.Errorf("STARTED has a date_done")
	}
}

func TestWorkerIgnoreResult(t *testing.T) {
	h := newHarness(t, celerity.Config{Concurrency: 1}, func(w *celerity.Worker) {
		registerAdd(w)
		w.Handle("t.quiet", func(context.Context, *celerity.Request) (any, error) { return 1, nil }, celerity.WithIgnoreResult())
	})
	h.start()
	q := h.publish("t.quiet", nil, nil)
	hdr := h.publish("t.add", []any{int64(1), int64(1)}, func(t *protocolv2.Task) { t.IgnoreResult = true })
	marker := h.publish("t.add", []any{int64(2), int64(2)}, nil)
	h.waitState(marker, resultstore.Success)
	h.wait("settled", func() bool { return h.tr.Broker().Unacked() == 0 })
	if h.be.last(q) != nil || h.be.last(hdr) != nil {
		t.Errorf("ignored results were stored")
	}
}

func TestWorkerRefusesDisallowedContent(t *testing.T) {
	h := newHarness(t, celerity.Config{Concurrency: 1}, registerAdd)
	h.start()
	id := protocolv2.NewID()
	m := &kombu.Message{
		Body: []byte("\x80\x04."), ContentType: "application/x-python-serialize", ContentEncoding: "binary",
		Headers:    map[string]any{"task": "t.add", "id": id},
		Properties: kombu.Properties{CorrelationID: id, DeliveryInfo: kombu.DeliveryInfo{RoutingKey: "q"}},
	}
	if err := h.tr.Publish(context.Background(), "", "q", m); err != nil {
		t.Fatal(err)
	}
	good := h.publish("t.add", []any{int64(1), int64(2)}, nil)
	h.waitState(good, resultstore.Success)
	h.wait("settled", func() bool { return h.tr.Broker().Unacked() == 0 && h.tr.Broker().Len("q") == 0 })
	if h.be.last(id) != nil {
		t.Errorf("a refused message got a result")
	}
}

// A warm shutdown hands reserved-but-unstarted messages back.
func TestWorkerWarmShutdownRestoresUnstarted(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 10)
	h := newHarness(t, celerity.Config{Concurrency: 1, PrefetchMultiplier: 4}, func(w *celerity.Worker) {
		w.Handle("t.block", func(ctx context.Context, r *celerity.Request) (any, error) {
			started <- r.ID
			<-release
			return "done", nil
		})
	})
	var ids []string
	for i := 0; i < 4; i++ {
		ids = append(ids, h.publish("t.block", nil, nil))
	}
	h.start()
	first := <-started
	h.wait("prefetch", func() bool { return h.tr.Broker().Len("q") == 0 })
	h.cancel()
	close(release)
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no shutdown")
	}
	h.cancel = nil
	if first != ids[0] {
		t.Errorf("first started %s, want %s", first, ids[0])
	}
	if m := h.be.last(first); m == nil || m.Status != resultstore.Success {
		t.Errorf("the running task did not finish: %+v", m)
	}
	if n := h.tr.Broker().Len("q"); n != 3 {
		t.Errorf("%d messages handed back, want 3", n)
	}
	if n := h.tr.Broker().Unacked(); n != 0 {
		t.Errorf("%d messages left unacked", n)
	}
}

// A task with a future ETA waits without taking the only execution slot.
func TestWorkerETADoesNotBlockSlot(t *testing.T) {
	var mu sync.Mutex
	var order []string
	h := newHarness(t, celerity.Config{Concurrency: 1}, func(w *celerity.Worker) {
		w.Handle("t.rec", func(_ context.Context, r *celerity.Request) (any, error) {
			mu.Lock()
			order = append(order, r.Args[0].(string))
			mu.Unlock()
			return nil, nil
		})
	})
	h.start()
	eta := time.Now().Add(300 * time.Millisecond)
	late := h.publish("t.rec", []any{"eta"}, func(t *protocolv2.Task) { t.ETA = eta })
	now := h.publish("t.rec", []any{"now"}, nil)
	h.waitState(now, resultstore.Success)
	m := h.waitState(late, resultstore.Success)
	if m.DateDone.Before(eta) {
		t.Errorf("ETA task ran at %v, before its ETA %v", m.DateDone, eta)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(order, ",") != "now,eta" {
		t.Errorf("order %v", order)
	}
}

func TestWorkerExpiredTaskIsRevoked(t *testing.T) {
	h := newHarness(t, celerity.Config{Concurrency: 1}, registerAdd)
	h.start()
	id := h.publish("t.add", []any{int64(1), int64(1)}, func(t *protocolv2.Task) { t.Expires = time.Now().Add(-time.Second) })
	m := h.waitState(id, resultstore.Revoked)
	if exc := m.Result.(*resultstore.ExceptionInfo); exc.Type != "TaskRevokedError" || exc.Message[0] != "expired" {
		t.Errorf("revoked as %#v", exc)
	}
}

// Run leaves no goroutine behind after a warm shutdown.
func TestWorkerLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHarness(t, celerity.Config{Concurrency: 4, TrackStarted: true}, registerAdd)
	h.start()
	id := h.publish("t.add", []any{int64(1), int64(2)}, nil)
	h.publish("t.add", []any{int64(1), int64(2)}, func(t *protocolv2.Task) { t.ETA = time.Now().Add(time.Hour) })
	h.waitState(id, resultstore.Success)
	h.wait("held task reserved", func() bool { return len(h.w.Scheduled()) == 1 })
	h.stop()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before Run, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.tr.Broker().Len("q"); n != 1 {
		t.Errorf("the held ETA task was not handed back (queue length %d)", n)
	}
}

// Shutdown (the remote-control command's target) ends Run warmly.
func TestWorkerShutdownEndsRun(t *testing.T) {
	h := newHarness(t, celerity.Config{Concurrency: 1}, registerAdd)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- h.w.Run(ctx, ctx) }()
	id := h.publish("t.add", []any{int64(1), int64(1)}, nil)
	h.waitState(id, resultstore.Success)
	h.w.Shutdown()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not end Run")
	}
}
