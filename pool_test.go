package celerity

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/resultstore"
)

// gatedHarness is a harness whose worker runs "t.gate" tasks on g; the
// caller starts it.
func gatedHarness(t *testing.T, cfg Config) (*harness, *gate) {
	t.Helper()
	h := newHarness(t, cfg)
	g := newGate()
	if err := h.w.Handle("t.gate", g.handler); err != nil {
		t.Fatal(err)
	}
	return h, g
}

// freePermits is the number of tasks that may start now.
func freePermits(p *pipeline) int { return len(p.permits) }

func TestPoolGrowShrink(t *testing.T) {
	h, g := gatedHarness(t, Config{Concurrency: 1, PrefetchMultiplier: 1})
	if err := h.w.Grow(1); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Grow before Run: %v", err)
	}
	h.start()
	p := h.w.pipe.Load()
	ids := h.sendN("t.gate", 6)
	h.waitFor("one task running", func() bool { r, _, _ := g.state(); return r == 1 })

	if err := h.w.Grow(2); err != nil {
		t.Fatal(err)
	}
	h.waitFor("three tasks running after Grow(2)", func() bool { r, _, _ := g.state(); return r == 3 })
	if s := h.w.Stats(); s.Concurrency != 3 || s.Prefetch != 3 || s.Autoscaler != nil {
		t.Errorf("stats after Grow(2): concurrency %d prefetch %d autoscaler %v", s.Concurrency, s.Prefetch, s.Autoscaler)
	}
	// The broker's prefetch count follows (basic.qos on AMQP).
	h.waitFor("prefetch 3 at the broker", func() bool {
		_, _, pf, _ := h.tr.snapshot()
		return slices.Contains(pf, 3)
	})

	if err := h.w.Shrink(2); err != nil {
		t.Fatal(err)
	}
	if s := h.w.Stats(); s.Concurrency != 1 || s.Prefetch != 1 {
		t.Errorf("stats after Shrink(2): concurrency %d prefetch %d", s.Concurrency, s.Prefetch)
	}
	// The three running tasks finish; the other three then run one at a
	// time.
	g.release(3)
	h.waitFor("three finished", func() bool { _, _, f := g.state(); return f >= 3 })
	g.resetPeak()
	for i := range 3 {
		h.waitFor("the next task to start", func() bool { r, _, f := g.state(); return r == 1 && f == 3+i })
		g.release(1)
	}
	for _, id := range ids {
		if m := h.waitFinal(id); m.Status != resultstore.Success {
			t.Errorf("%s: %s", id, m.Status)
		}
	}
	if _, peak, _ := g.state(); peak != 1 {
		t.Errorf("after Shrink(2) %d tasks ran at once, want 1", peak)
	}
	h.waitFor("one free permit and one executor", func() bool { return freePermits(p) == 1 && p.executors.Load() == 1 })

	if err := h.w.Shrink(1); err == nil {
		t.Error("Shrink to zero executors succeeded")
	}
	for _, n := range []int{MaxPool, math.MaxInt} {
		if err := h.w.Grow(n); err == nil || !strings.Contains(err.Error(), "cannot grow") {
			t.Errorf("Grow(%d): %v", n, err)
		}
	}
	if err := h.w.Shrink(math.MaxInt); err == nil || !strings.Contains(err.Error(), "cannot shrink") {
		t.Errorf("Shrink(MaxInt): %v", err)
	}
	if err := h.w.Grow(-1); err == nil {
		t.Error("Grow(-1) succeeded")
	}
	if _, _, err := h.w.Autoscale(nil, nil); !errors.Is(err, ErrNotAutoscaling) {
		t.Errorf("Autoscale without autoscaling: %v", err)
	}
	h.stop()
	if err := h.w.Grow(1); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Grow after Run: %v", err)
	}
}

// A grow after a shrink whose executors are still busy keeps them
// instead of starting new ones.
func TestPoolShrinkThenGrowWhileBusy(t *testing.T) {
	h, g := gatedHarness(t, Config{Concurrency: 3, PrefetchMultiplier: 1})
	h.start()
	p := h.w.pipe.Load()
	ids := h.sendN("t.gate", 3)
	h.waitFor("three running", func() bool { r, _, _ := g.state(); return r == 3 })
	if err := h.w.Shrink(2); err != nil {
		t.Fatal(err)
	}
	if err := h.w.Grow(2); err != nil {
		t.Fatal(err)
	}
	g.release(3)
	for _, id := range ids {
		h.waitFinal(id)
	}
	h.waitFor("three free permits", func() bool { return freePermits(p) == 3 && p.executors.Load() == 3 })
	if n := len(p.quit); n != 0 {
		t.Errorf("%d executors still asked to stop", n)
	}
	g.resetPeak()
	more := h.sendN("t.gate", 3)
	h.waitFor("three running again", func() bool { r, _, _ := g.state(); return r == 3 })
	g.release(3)
	for _, id := range more {
		h.waitFinal(id)
	}
}

func TestAutoscale(t *testing.T) {
	h, g := gatedHarness(t, Config{AutoscaleMax: 3, AutoscaleKeepalive: 20 * time.Millisecond, PrefetchMultiplier: 1})
	h.start()
	if s := h.w.Stats(); s.Concurrency != 0 || s.Prefetch != 3 || s.Autoscaler == nil || s.Autoscaler.Max != 3 || s.Autoscaler.Min != 0 {
		t.Errorf("idle autoscaled worker: %+v", s)
	}
	if err := h.w.Grow(1); !errors.Is(err, ErrAutoscaling) {
		t.Errorf("Grow while autoscaling: %v", err)
	}
	ids := h.sendN("t.gate", 5)
	h.waitFor("three running (max)", func() bool { r, _, _ := g.state(); return r == 3 })
	if s := h.w.Stats(); s.Concurrency != 3 || s.Autoscaler.Current != 3 || s.Autoscaler.Qty < 3 {
		t.Errorf("busy: concurrency %d autoscaler %+v", s.Concurrency, s.Autoscaler)
	}
	g.release(5)
	for _, id := range ids {
		h.waitFinal(id)
	}
	if _, peak, _ := g.state(); peak != 3 {
		t.Errorf("peak %d tasks at once, want the max 3", peak)
	}
	h.waitFor("the pool to scale down to 0", func() bool { return h.w.Stats().Concurrency == 0 })
	p := h.w.pipe.Load()
	h.waitFor("no executor and no permit", func() bool { return p.executors.Load() == 0 && freePermits(p) == 0 })

	hi, lo := 5, 2
	if gotMax, gotMin, err := h.w.Autoscale(&hi, &lo); err != nil || gotMax != 5 || gotMin != 2 {
		t.Fatalf("Autoscale(5, 2) = %d, %d, %v", gotMax, gotMin, err)
	}
	if s := h.w.Stats(); s.Concurrency != 2 || s.Prefetch != 5 {
		t.Errorf("after autoscale 5 2: concurrency %d prefetch %d", s.Concurrency, s.Prefetch)
	}
	one := 1
	if _, _, err := h.w.Autoscale(&one, nil); err == nil {
		t.Error("max 1 below min 2 accepted")
	}
	more := h.sendN("t.gate", 5)
	h.waitFor("five running", func() bool { r, _, _ := g.state(); return r == 5 })
	g.release(5)
	for _, id := range more {
		h.waitFinal(id)
	}
	h.waitFor("the pool back at min 2", func() bool { return h.w.Stats().Concurrency == 2 })
}

func TestAutoscaleConfig(t *testing.T) {
	for _, c := range []Config{
		{AutoscaleMax: -1},
		{AutoscaleMax: 2, AutoscaleMin: 3},
		{AutoscaleMin: 1},
		{AutoscaleMax: MaxPool + 1},
		{Concurrency: MaxPool + 1},
	} {
		if _, err := NewWorker(&recTransport{}, nil, c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// Tasks waiting for an executor are received (logged, announced,
// tracked) when they arrive, as Celery's consumer receives them: inspect
// reserved lists them while another task runs.
func TestWaitingTasksAreReserved(t *testing.T) {
	h, g := gatedHarness(t, Config{Concurrency: 1})
	h.start()
	first := h.sendN("t.gate", 1)
	h.waitFor("the first task to run", func() bool { r, _, _ := g.state(); return r == 1 })
	waiting := h.sendN("t.gate", 3)
	h.waitFor("three reserved tasks", func() bool { return len(h.w.Reserved()) == 3 })
	var got []string
	for _, ti := range h.w.Reserved() {
		got = append(got, ti.ID)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(waiting))
	if !slices.Equal(got, want) {
		t.Errorf("reserved %v, want %v", got, want)
	}
	if a := h.w.Active(); len(a) != 1 || a[0].ID != first[0] {
		t.Errorf("active %v, want %s", a, first[0])
	}
	g.release(4)
	for _, id := range append(first, waiting...) {
		h.waitFinal(id)
	}
	if r := h.w.Reserved(); len(r) != 0 {
		t.Errorf("reserved after the tasks finished: %v", r)
	}
}

// A resize between the pipeline's creation and the start of its executors
// (a control command right after Run began) is counted once.
func TestResizeBeforeExecutorsStart(t *testing.T) {
	h := newHarness(t, Config{Concurrency: 2})
	cons, err := h.tr.Consume(context.Background(), []string{"q"}, 8)
	if err != nil {
		t.Fatal(err)
	}
	fetchCtx, stop := context.WithCancel(context.Background())
	p := newPipeline(h.w, cons, fetchCtx, context.Background())
	if err := p.resize(3); err != nil {
		t.Fatal(err)
	}
	if err := p.resize(-1); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); p.run() }()
	h.waitFor("four executors and four permits", func() bool { return p.executors.Load() == 4 && freePermits(p) == 4 })
	stop()
	<-done
	if n := p.executors.Load(); n != 0 {
		t.Errorf("%d executors after run returned", n)
	}
}

// While a shrink waits for running tasks to give their permits back, a
// task waiting for an executor does not start before the pool is within
// its new size.
func TestShrinkStartsNothingBeyondNewSize(t *testing.T) {
	h, g := gatedHarness(t, Config{Concurrency: 3, PrefetchMultiplier: 1})
	h.start()
	p := h.w.pipe.Load()
	ids := h.sendN("t.gate", 3)
	h.waitFor("three running", func() bool { r, _, _ := g.state(); return r == 3 })
	ids = append(ids, h.sendN("t.gate", 1)...)
	h.waitFor("the fourth reserved", func() bool { return len(h.w.Reserved()) == 1 })
	if err := h.w.Shrink(2); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		g.release(1)
		h.waitFor("a task to finish", func() bool { _, _, f := g.state(); return f == i })
		if r, _, _ := g.state(); r != 3-i || p.permitDebt.Load() != int64(2-i) || freePermits(p) != 0 {
			t.Fatalf("after %d finished: %d running, debt %d, %d free permits; want %d, %d, 0",
				i, r, p.permitDebt.Load(), freePermits(p), 3-i, 2-i)
		}
	}
	g.release(2) // the last of the three, then the fourth
	for _, id := range ids {
		h.waitFinal(id)
	}
	if _, peak, _ := g.state(); peak != 3 {
		t.Errorf("peak %d", peak)
	}
}
