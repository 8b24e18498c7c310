package celerity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/resultstore"
	"github.com/celerity-go/celerity/transports"
	"github.com/celerity-go/celerity/transports/memory"
)

// recBackend records stored states.
type recBackend struct {
	mu    sync.Mutex
	metas []*resultstore.Meta
}

func (b *recBackend) Store(_ context.Context, ms ...*resultstore.Meta) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.metas = append(b.metas, ms...)
	return nil
}
func (b *recBackend) Get(context.Context, string) (map[string]any, error) { return nil, nil }
func (b *recBackend) Close() error                                        { return nil }

// states returns the stored metas of id, in order.
func (b *recBackend) states(id string) []*resultstore.Meta {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*resultstore.Meta
	for _, m := range b.metas {
		if m.TaskID == id {
			out = append(out, m)
		}
	}
	return out
}

// last returns the latest meta of id with a ready state, or nil.
func (b *recBackend) final(id string) *resultstore.Meta {
	ms := b.states(id)
	for i := len(ms) - 1; i >= 0; i-- {
		if resultstore.Ready(ms[i].Status) {
			return ms[i]
		}
	}
	return nil
}

// recTransport wraps the memory transport, recording settlements, prefetch
// changes and touches (it implements DeliveryToucher).
type recTransport struct {
	*memory.Transport
	mu       sync.Mutex
	acked    []string // task ids
	rejected []string // "id requeue=bool"
	prefetch []int
	touched  map[string]int
}

type recConsumer struct {
	transports.Consumer
	t *recTransport
}

func (t *recTransport) Consume(ctx context.Context, queues []string, prefetch int) (transports.Consumer, error) {
	c, err := t.Transport.Consume(ctx, queues, prefetch)
	if err != nil {
		return nil, err
	}
	return &recConsumer{Consumer: c, t: t}, nil
}

func taskID(d *transports.Delivery) string { id, _ := d.Message.Headers["id"].(string); return id }

func (c *recConsumer) Ack(ctx context.Context, ds ...*transports.Delivery) error {
	c.t.mu.Lock()
	for _, d := range ds {
		c.t.acked = append(c.t.acked, taskID(d))
	}
	c.t.mu.Unlock()
	return c.Consumer.Ack(ctx, ds...)
}

func (c *recConsumer) Reject(ctx context.Context, d *transports.Delivery, requeue bool) error {
	c.t.mu.Lock()
	c.t.rejected = append(c.t.rejected, fmt.Sprintf("%s requeue=%v", taskID(d), requeue))
	c.t.mu.Unlock()
	return c.Consumer.Reject(ctx, d, requeue)
}

func (c *recConsumer) SetPrefetch(n int) error {
	c.t.mu.Lock()
	c.t.prefetch = append(c.t.prefetch, n)
	c.t.mu.Unlock()
	return c.Consumer.SetPrefetch(n)
}

func (c *recConsumer) Touch(_ context.Context, ds ...*transports.Delivery) error {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	if c.t.touched == nil {
		c.t.touched = map[string]int{}
	}
	for _, d := range ds {
		c.t.touched[taskID(d)]++
	}
	return nil
}

func (t *recTransport) snapshot() (acked, rejected []string, prefetch []int, touched map[string]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	touched = map[string]int{}
	for k, v := range t.touched {
		touched[k] = v
	}
	return append([]string(nil), t.acked...), append([]string(nil), t.rejected...), append([]int(nil), t.prefetch...), touched
}

type harness struct {
	t    *testing.T
	w    *Worker
	tr   *recTransport
	rb   *recBackend
	stop func()
	done chan struct{}
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	tr := &recTransport{Transport: memory.New()}
	rb := &recBackend{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 2
	}
	cfg.Queues = []string{"q"}
	w, err := NewWorker(tr, rb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, w: w, tr: tr, rb: rb}
}

func (h *harness) start() {
	fetchCtx, stopFetch := context.WithCancel(context.Background())
	workCtx, stopWork := context.WithCancel(context.Background())
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		if err := h.w.Run(fetchCtx, workCtx); err != nil {
			h.t.Error(err)
		}
	}()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			stopFetch()
			select {
			case <-h.done:
			case <-time.After(10 * time.Second):
				h.t.Error("worker did not stop")
			}
			stopWork()
		})
	}
	h.t.Cleanup(h.stop)
	h.waitFor("the pipeline", func() bool { return h.w.pipe.Load() != nil })
}

func (h *harness) send(task *protocolv2.Task, opt protocolv2.EncodeOptions) {
	h.t.Helper()
	if task.ID == "" {
		task.ID = protocolv2.NewID()
	}
	opt.RoutingKey = "q"
	m, err := protocolv2.Encode(task, opt)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.tr.Publish(context.Background(), "", "q", m); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) waitFinal(id string) *resultstore.Meta {
	h.t.Helper()
	var m *resultstore.Meta
	h.waitFor("the result of "+id, func() bool { m = h.rb.final(id); return m != nil })
	return m
}

func excOf(t *testing.T, m *resultstore.Meta) resultstore.ExceptionInfo {
	t.Helper()
	e, ok := m.Result.(*resultstore.ExceptionInfo)
	if !ok {
		t.Fatalf("%s result is %#v, not an exception", m.Status, m.Result)
	}
	return *e
}

// A retry republishes the same id with everything Celery's
// signature_from_request keeps, stores RETRY with the reason and the
// child tuple, and acks the original.
func TestRetryRepublishesSameTask(t *testing.T) {
	h := newHarness(t, Config{})
	var mu sync.Mutex
	var seen []*Request
	if err := h.w.Handle("t.flaky", func(_ context.Context, r *Request) (any, error) {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		if r.Retries == 0 {
			return nil, &RetryError{Err: ValueError("x"), ETA: time.Now()}
		}
		return "ok", nil
	}); err != nil {
		t.Fatal(err)
	}
	h.start()
	gi := 2
	task := &protocolv2.Task{
		Name: "t.flaky", Args: []any{int64(1)}, Kwargs: map[string]any{"k": "v"},
		RootID: "root-1", Group: "g-1", GroupIndex: &gi,
		Expires:   time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond),
		TimeLimit: protocolv2.TimeLimit{Hard: protocolv2.Seconds(30), Soft: protocolv2.Seconds(20)},
		Extra:     map[string]any{"x-custom": "yes"},
		Callbacks: []protocolv2.Signature{{Task: "t.cb", Args: []any{}, Kwargs: map[string]any{}, Options: map[string]any{}}},
	}
	h.send(task, protocolv2.EncodeOptions{ReplyTo: "reply-1", Priority: 3})
	m := h.waitFinal(task.ID)
	if m.Status != resultstore.Success || m.Result != "ok" {
		t.Fatalf("final %s %v", m.Status, m.Result)
	}
	// RETRY is stored after the retry was published, so the new attempt's
	// SUCCESS may be stored first (Celery has the same race; the backend
	// never lets RETRY overwrite SUCCESS).
	var r *resultstore.Meta
	states := h.rb.states(task.ID)
	for _, s := range states {
		if s.Status == resultstore.Retry {
			r = s
		}
	}
	if len(states) != 2 || r == nil {
		h.waitFor("two states", func() bool { return len(h.rb.states(task.ID)) == 2 })
		for _, s := range h.rb.states(task.ID) {
			if s.Status == resultstore.Retry {
				r = s
			}
		}
	}
	if r == nil {
		t.Fatal("no RETRY stored")
	}
	if e := excOf(t, r); e.Type != "ValueError" || e.Module != "builtins" || !reflect.DeepEqual(e.Message, []any{"x"}) {
		t.Errorf("RETRY result %+v", e)
	}
	if want := []any{[]any{[]any{task.ID, nil}, nil}}; !reflect.DeepEqual(r.Children, want) {
		t.Errorf("RETRY children %#v", r.Children)
	}
	if !strings.Contains(r.Traceback, "celery.exceptions.Retry: Retry at ") || !strings.HasSuffix(r.Traceback, ": ValueError('x')\n") {
		t.Errorf("RETRY traceback %q", r.Traceback)
	}
	if !r.DateDone.IsZero() || r.GroupID != "g-1" {
		t.Errorf("RETRY date_done %v group %q", r.DateDone, r.GroupID)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("%d calls", len(seen))
	}
	a, b := seen[0], seen[1]
	if b.ID != a.ID || b.Retries != 1 || b.RootID != "root-1" || b.ParentID != task.ID {
		t.Errorf("retry ids: id %s retries %d root %s parent %s", b.ID, b.Retries, b.RootID, b.ParentID)
	}
	if !reflect.DeepEqual(b.Args, a.Args) || !reflect.DeepEqual(b.Kwargs, a.Kwargs) {
		t.Errorf("retry args %v %v", b.Args, b.Kwargs)
	}
	if b.ReplyTo != "reply-1" || b.DeliveryInfo.Priority != 3 || b.DeliveryInfo.RoutingKey != "q" || b.DeliveryInfo.Exchange != "" {
		t.Errorf("retry reply_to %q delivery %+v", b.ReplyTo, b.DeliveryInfo)
	}
	if !b.Expires.Equal(task.Expires) || b.Group != "g-1" || b.GroupIndex == nil || *b.GroupIndex != 2 {
		t.Errorf("retry expires %v group %q %v", b.Expires, b.Group, b.GroupIndex)
	}
	if tl := b.Message.TimeLimit; tl.Hard == nil || *tl.Hard != 30 || tl.Soft == nil || *tl.Soft != 20 {
		t.Errorf("retry timelimit %+v", tl)
	}
	if b.Headers["x-custom"] != "yes" || len(b.Message.Callbacks) != 1 || b.Message.Callbacks[0].Task != "t.cb" {
		t.Errorf("retry headers %v callbacks %v", b.Headers, b.Message.Callbacks)
	}
	if b.ETA.IsZero() {
		t.Error("retry has no eta")
	}
	acked, rejected, _, _ := h.tr.snapshot()
	if len(acked) != 2 || len(rejected) != 0 {
		t.Errorf("acked %v rejected %v", acked, rejected)
	}
}

func TestMaxRetriesExceeded(t *testing.T) {
	h := newHarness(t, Config{})
	calls := map[string]int{}
	var mu sync.Mutex
	handler := func(reason error) Handler {
		return func(_ context.Context, r *Request) (any, error) {
			mu.Lock()
			calls[r.ID]++
			mu.Unlock()
			return nil, &RetryError{Err: reason, ETA: time.Now()}
		}
	}
	if err := h.w.Handle("t.noreason", handler(nil), WithMaxRetries(2)); err != nil {
		t.Fatal(err)
	}
	if err := h.w.Handle("t.reason", handler(KeyError("k"))); err != nil { // default max_retries 3
		t.Fatal(err)
	}
	if err := h.w.Handle("t.override", func(_ context.Context, r *Request) (any, error) {
		mu.Lock()
		calls[r.ID]++
		mu.Unlock()
		zero := 0
		return nil, &RetryError{ETA: time.Now(), MaxRetries: &zero}
	}, WithMaxRetries(5)); err != nil {
		t.Fatal(err)
	}
	h.start()
	a := &protocolv2.Task{Name: "t.noreason", Args: []any{int64(1), "a"}, Kwargs: map[string]any{"k": "v"}}
	b := &protocolv2.Task{Name: "t.reason"}
	c := &protocolv2.Task{Name: "t.override"}
	h.send(a, protocolv2.EncodeOptions{})
	h.send(b, protocolv2.EncodeOptions{})
	h.send(c, protocolv2.EncodeOptions{})

	ma := h.waitFinal(a.ID)
	want := fmt.Sprintf("Can't retry t.noreason[%s] args:(1, 'a') kwargs:{'k': 'v'}", a.ID)
	if e := excOf(t, ma); ma.Status != resultstore.Failure || e.Type != "MaxRetriesExceededError" || e.Module != "celery.exceptions" || !reflect.DeepEqual(e.Message, []any{want}) {
		t.Errorf("t.noreason: %s %+v", ma.Status, e)
	}
	mb := h.waitFinal(b.ID)
	if e := excOf(t, mb); mb.Status != resultstore.Failure || e.Type != "KeyError" || !reflect.DeepEqual(e.Message, []any{"k"}) {
		t.Errorf("t.reason: %s %+v", mb.Status, e)
	}
	mc := h.waitFinal(c.ID)
	if e := excOf(t, mc); e.Type != "MaxRetriesExceededError" {
		t.Errorf("t.override: %+v", e)
	}
	mu.Lock()
	defer mu.Unlock()
	// max_retries n allows n retries: n+1 calls.
	if calls[a.ID] != 3 || calls[b.ID] != 4 || calls[c.ID] != 1 {
		t.Errorf("calls %v (want 3, 4, 1)", calls)
	}
	h.waitFor("RETRY, RETRY, FAILURE", func() bool { return len(h.rb.states(a.ID)) == 3 })
}

func TestAutoretry(t *testing.T) {
	h := newHarness(t, Config{})
	var mu sync.Mutex
	calls := 0
	if err := h.w.Handle("t.auto", func(_ context.Context, r *Request) (any, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		if r.Retries < 2 {
			return nil, ValueError("flaky")
		}
		return nil, TypeError("fatal") // not autoretried
	}, WithMaxRetries(5), WithAutoretry(1, 0, false, AutoretryPy("ValueError"))); err != nil {
		t.Fatal(err)
	}
	h.start()
	task := &protocolv2.Task{Name: "t.auto"}
	h.send(task, protocolv2.EncodeOptions{})
	m := h.waitFinal(task.ID)
	if e := excOf(t, m); e.Type != "TypeError" {
		t.Errorf("final %+v", e)
	}
	h.waitFor("three states", func() bool { return len(h.rb.states(task.ID)) == 3 })
	var retries []*resultstore.Meta
	for _, s := range h.rb.states(task.ID) {
		if s.Status == resultstore.Retry {
			retries = append(retries, s)
		}
	}
	if len(retries) != 2 {
		t.Fatalf("%d RETRY states", len(retries))
	}
	// retry_backoff_max 0 caps the backoff at 0 s: immediate retries.
	for _, s := range retries {
		if e := excOf(t, s); e.Type != "ValueError" || !strings.Contains(s.Traceback, "Retry in 0s: ValueError('flaky')") {
			t.Errorf("RETRY %+v %q", e, s.Traceback)
		}
	}
	if calls != 3 {
		t.Errorf("%d calls", calls)
	}
}

// The hard limit stores TimeLimitExceeded and frees the only execution
// slot although the handler ignores its context; the abandoned handler's
// eventual result is discarded.
func TestHardTimeLimitFreesSlot(t *testing.T) {
	h := newHarness(t, Config{Concurrency: 1, AcksLate: true})
	release := make(chan struct{})
	var ctxCause error
	var mu sync.Mutex
	if err := h.w.Handle("t.stuck", func(ctx context.Context, _ *Request) (any, error) {
		<-release // ignores ctx
		mu.Lock()
		ctxCause = context.Cause(ctx)
		mu.Unlock()
		return "late", nil
	}, WithTimeLimit(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := h.w.Handle("t.quick", func(context.Context, *Request) (any, error) { return "quick", nil }); err != nil {
		t.Fatal(err)
	}
	h.start()
	stuck := &protocolv2.Task{Name: "t.stuck"}
	quick := &protocolv2.Task{Name: "t.quick"}
	h.send(stuck, protocolv2.EncodeOptions{})
	ms := h.waitFinal(stuck.ID)
	if e := excOf(t, ms); ms.Status != resultstore.Failure || e.Type != "TimeLimitExceeded" || e.Module != "billiard.exceptions" || !reflect.DeepEqual(e.Message, []any{0.05}) {
		t.Errorf("stuck: %s %+v", ms.Status, e)
	}
	h.send(quick, protocolv2.EncodeOptions{})
	if mq := h.waitFinal(quick.ID); mq.Result != "quick" {
		t.Errorf("quick: %v", mq.Result)
	}
	p := h.w.pipe.Load()
	if n := p.abandoned.Load(); n != 1 {
		t.Errorf("abandoned handlers: %d, want 1", n)
	}
	close(release)
	h.waitFor("the abandoned handler to return", func() bool { return p.abandoned.Load() == 0 })
	h.stop()
	mu.Lock()
	if ctxCause != ErrTimeLimitExceeded {
		t.Errorf("stuck handler's context cause %v", ctxCause)
	}
	mu.Unlock()
	if n := len(h.rb.states(stuck.ID)); n != 1 {
		t.Errorf("stuck task stored %d states; the late result must be discarded", n)
	}
	acked, rejected, _, _ := h.tr.snapshot()
	if len(acked) != 2 || len(rejected) != 0 {
		t.Errorf("acked %v rejected %v", acked, rejected)
	}
}

func TestSoftTimeLimitFromHeader(t *testing.T) {
	h := newHarness(t, Config{})
	if err := h.w.Handle("t.wait", func(ctx context.Context, _ *Request) (any, error) {
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	h.start()
	task := &protocolv2.Task{Name: "t.wait", TimeLimit: protocolv2.TimeLimit{Soft: protocolv2.Seconds(0.02)}}
	h.send(task, protocolv2.EncodeOptions{})
	m := h.waitFinal(task.ID)
	if e := excOf(t, m); e.Type != "SoftTimeLimitExceeded" || e.Module != "billiard.exceptions" || len(e.Message) != 0 {
		t.Errorf("soft: %+v", e)
	}
}

func TestTimeLimitPrecedence(t *testing.T) {
	p := &pipeline{w: &Worker{cfg: Config{TimeLimit: 9 * time.Second, SoftTimeLimit: 8 * time.Second}}}
	reg := &registered{opts: TaskOptions{TimeLimit: 7 * time.Second}}
	for _, c := range []struct {
		tl         protocolv2.TimeLimit
		hard, soft time.Duration
	}{
		{protocolv2.TimeLimit{}, 7 * time.Second, 8 * time.Second},
		{protocolv2.TimeLimit{Hard: protocolv2.Seconds(2), Soft: protocolv2.Seconds(1.5)}, 2 * time.Second, 1500 * time.Millisecond},
		{protocolv2.TimeLimit{Hard: protocolv2.Seconds(0)}, 7 * time.Second, 8 * time.Second}, // 0 is falsy in Celery
		// Beyond a Duration (kombu's JSON also reads Infinity): the longest
		// one, not a conversion that wraps to "no limit" on one CPU and
		// not on another.
		{protocolv2.TimeLimit{Hard: protocolv2.Seconds(1e300), Soft: protocolv2.Seconds(math.Inf(1))}, math.MaxInt64, math.MaxInt64},
	} {
		j := &job{t: &protocolv2.Task{TimeLimit: c.tl}, reg: reg}
		if hard, soft := p.timeLimits(j); hard != c.hard || soft != c.soft {
			t.Errorf("%+v: %v %v, want %v %v", c.tl, hard, soft, c.hard, c.soft)
		}
	}
}

// With acks late, acks_on_failure_or_timeout=false rejects a failed task
// without requeue (after storing FAILURE); the default acks it.
func TestAcksOnFailureOrTimeout(t *testing.T) {
	off := false
	h := newHarness(t, Config{AcksLate: true, AcksOnFailureOrTimeout: &off})
	fail := func(context.Context, *Request) (any, error) { return nil, ValueError("no") }
	if err := h.w.Handle("t.fail", fail); err != nil {
		t.Fatal(err)
	}
	if err := h.w.Handle("t.fail_ack", fail, WithAcksOnFailureOrTimeout(true)); err != nil {
		t.Fatal(err)
	}
	h.start()
	a := &protocolv2.Task{Name: "t.fail"}
	b := &protocolv2.Task{Name: "t.fail_ack"}
	h.send(a, protocolv2.EncodeOptions{})
	h.send(b, protocolv2.EncodeOptions{})
	h.waitFinal(a.ID)
	h.waitFinal(b.ID)
	h.stop()
	acked, rejected, _, _ := h.tr.snapshot()
	if !reflect.DeepEqual(acked, []string{b.ID}) || !reflect.DeepEqual(rejected, []string{a.ID + " requeue=false"}) {
		t.Errorf("acked %v rejected %v", acked, rejected)
	}
}

// ignore_result drops FAILURE unless store_errors_even_if_ignored.
func TestStoreErrorsEvenIfIgnored(t *testing.T) {
	h := newHarness(t, Config{})
	fail := func(context.Context, *Request) (any, error) { return nil, ValueError("no") }
	if err := h.w.Handle("t.quiet", fail, WithIgnoreResult()); err != nil {
		t.Fatal(err)
	}
	if err := h.w.Handle("t.loud", fail, WithIgnoreResult(), WithStoreErrorsEvenIfIgnored(true)); err != nil {
		t.Fatal(err)
	}
	h.start()
	a := &protocolv2.Task{Name: "t.quiet"}
	b := &protocolv2.Task{Name: "t.loud"}
	h.send(a, protocolv2.EncodeOptions{})
	h.send(b, protocolv2.EncodeOptions{})
	if m := h.waitFinal(b.ID); m.Status != resultstore.Failure {
		t.Errorf("loud: %s", m.Status)
	}
	h.waitFor("both acked", func() bool { acked, _, _, _ := h.tr.snapshot(); return len(acked) == 2 })
	h.stop()
	if n := len(h.rb.states(a.ID)); n != 0 {
		t.Errorf("quiet stored %d states", n)
	}
}

// A rate-limited task waits in the timer, not in an execution slot: with
// one slot and a rate of one per minute, the second task is parked while
// other tasks run, the prefetch count is raised for it and it is touched;
// at shutdown it goes back to the broker.
func TestRateLimitParksWithoutSlot(t *testing.T) {
	h := newHarness(t, Config{Concurrency: 1, PrefetchMultiplier: 1, TouchInterval: 5 * time.Millisecond,
		RateLimits: map[string]string{"t.slow": "1/m"}})
	ok := func(context.Context, *Request) (any, error) { return "ok", nil }
	if err := h.w.Handle("t.slow", ok, WithRateLimit("1000/s")); err != nil { // RateLimits wins
		t.Fatal(err)
	}
	if err := h.w.Handle("t.fast", ok); err != nil {
		t.Fatal(err)
	}
	h.start()
	s1, s2 := &protocolv2.Task{Name: "t.slow"}, &protocolv2.Task{Name: "t.slow"}
	h.send(s1, protocolv2.EncodeOptions{})
	h.send(s2, protocolv2.EncodeOptions{})
	var fast []*protocolv2.Task
	for range 5 {
		f := &protocolv2.Task{Name: "t.fast"}
		fast = append(fast, f)
		h.send(f, protocolv2.EncodeOptions{})
	}
	h.waitFinal(s1.ID)
	for _, f := range fast {
		h.waitFinal(f.ID)
	}
	h.waitFor("the parked task to be touched", func() bool { _, _, _, tc := h.tr.snapshot(); return tc[s2.ID] > 0 })
	p := h.w.pipe.Load()
	if n := p.held.Load(); n != 1 {
		t.Errorf("held %d, want 1", n)
	}
	h.waitFor("prefetch raised to 2", func() bool {
		_, _, pf, _ := h.tr.snapshot()
		return len(pf) > 0 && pf[len(pf)-1] == 2
	})
	h.stop()
	if m := h.rb.final(s2.ID); m != nil {
		t.Errorf("parked task ran: %s", m.Status)
	}
	if n := h.tr.Broker().Len("q"); n != 1 {
		t.Errorf("%d messages back in the queue, want the parked one", n)
	}
}

// An ETA task is held without a slot, raises the prefetch count and is
// touched; past expiry at run time it is REVOKED.
func TestETAHeldAndExpiredAtRun(t *testing.T) {
	h := newHarness(t, Config{Concurrency: 1, PrefetchMultiplier: 1, TouchInterval: 5 * time.Millisecond})
	ok := func(context.Context, *Request) (any, error) { return "ok", nil }
	if err := h.w.Handle("t.ok", ok); err != nil {
		t.Fatal(err)
	}
	h.start()
	now := time.Now().UTC()
	late := &protocolv2.Task{Name: "t.ok", ETA: now.Add(time.Hour)}
	exp := &protocolv2.Task{Name: "t.ok", ETA: now.Add(30 * time.Millisecond), Expires: now.Add(20 * time.Millisecond)}
	past := &protocolv2.Task{Name: "t.ok", Expires: now.Add(-time.Second)}
	h.send(late, protocolv2.EncodeOptions{})
	h.send(exp, protocolv2.EncodeOptions{})
	h.send(past, protocolv2.EncodeOptions{})
	for _, task := range []*protocolv2.Task{exp, past} {
		m := h.waitFinal(task.ID)
		if e := excOf(t, m); m.Status != resultstore.Revoked || e.Type != "TaskRevokedError" || !reflect.DeepEqual(e.Message, []any{"expired"}) {
			t.Errorf("%s: %s %+v", task.ID, m.Status, e)
		}
	}
	h.waitFor("the held task to be touched", func() bool { _, _, _, tc := h.tr.snapshot(); return tc[late.ID] > 0 })
	h.stop()
	if h.rb.final(late.ID) != nil || h.tr.Broker().Len("q") != 1 {
		t.Errorf("the held task ran or was not handed back")
	}
}

func TestInZone(t *testing.T) {
	sh := time.FixedZone("CST", 8*3600)
	naive, err := protocolv2.ParseTime("2026-03-01T10:00:00")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := inZone(naive, sh), time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("naive in +08:00: %v, want %v", got, want)
	}
	aware, _ := protocolv2.ParseTime("2026-03-01T10:00:00+01:00")
	if got := inZone(aware, sh); !got.Equal(aware) {
		t.Errorf("aware time moved: %v", got)
	}
	if !inZone(time.Time{}, sh).IsZero() {
		t.Error("zero time moved")
	}
}

func TestRetryErrorText(t *testing.T) {
	for _, c := range []struct {
		e    *RetryError
		want string
	}{
		{Retry(ValueError("x"), time.Second), "Retry in 1s: ValueError('x')"},
		{Retry(nil, 200*time.Millisecond), "Retry in 0.2s"},
		{&RetryError{ETA: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, "Retry at 2026-01-02 03:04:05+00:00"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%q, want %q", got, c.want)
		}
	}
}

// SetTimeLimit (Celery's time_limit command) replaces the task's own
// limits: a running worker soft-limits the next task, a message's header
// still comes first, and nil soft/hard fall back to the worker's setting.
func TestSetTimeLimit(t *testing.T) {
	h := newHarness(t, Config{})
	if err := h.w.Handle("t.wait", func(ctx context.Context, _ *Request) (any, error) {
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}, WithTimeLimit(time.Hour)); err != nil {
		t.Fatal(err)
	}
	h.start()
	soft := 0.02
	if err := h.w.SetTimeLimit("t.wait", &soft, nil); err != nil {
		t.Fatal(err)
	}
	task := &protocolv2.Task{Name: "t.wait"}
	h.send(task, protocolv2.EncodeOptions{})
	if e := excOf(t, h.waitFinal(task.ID)); e.Type != "SoftTimeLimitExceeded" {
		t.Errorf("after time_limit soft=0.02: %+v", e)
	}

	if err := h.w.SetTimeLimit("t.nope", &soft, nil); !errors.Is(err, ErrUnknownTask) {
		t.Errorf("unknown task: %v", err)
	}
	for _, bad := range []float64{-1, math.NaN()} {
		if err := h.w.SetTimeLimit("t.wait", &bad, nil); err == nil {
			t.Errorf("soft %v accepted", bad)
		}
	}

	p := &pipeline{w: &Worker{cfg: Config{TimeLimit: 9 * time.Second, SoftTimeLimit: 8 * time.Second}, handlers: h.w.handlers}}
	reg := &registered{opts: TaskOptions{TimeLimit: 7 * time.Second, SoftTimeLimit: 6 * time.Second}}
	limits := func(tl protocolv2.TimeLimit) (time.Duration, time.Duration) {
		return p.timeLimits(&job{t: &protocolv2.Task{Name: "t.wait", TimeLimit: tl}, reg: reg})
	}
	if hard, soft := limits(protocolv2.TimeLimit{}); hard != 7*time.Second || soft != 6*time.Second {
		t.Errorf("before: %v %v, want the task's 7s 6s", hard, soft)
	}
	two, huge := 2.0, 1e300
	if err := p.w.SetTimeLimit("t.wait", nil, &two); err != nil {
		t.Fatal(err)
	}
	if hard, soft := limits(protocolv2.TimeLimit{}); hard != 2*time.Second || soft != 8*time.Second {
		t.Errorf("soft=None hard=2: %v %v, want 2s and the worker's 8s", hard, soft)
	}
	if hard, soft := limits(protocolv2.TimeLimit{Hard: protocolv2.Seconds(3), Soft: protocolv2.Seconds(1)}); hard != 3*time.Second || soft != time.Second {
		t.Errorf("header over time_limit: %v %v, want 3s 1s", hard, soft)
	}
	if err := p.w.SetTimeLimit("t.wait", &huge, nil); err != nil {
		t.Fatal(err)
	}
	if hard, soft := limits(protocolv2.TimeLimit{}); hard != 9*time.Second || soft != math.MaxInt64 {
		t.Errorf("soft=1e300 hard=None: %v %v, want the worker's 9s and the longest Duration", hard, soft)
	}
}
