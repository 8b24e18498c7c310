package celerity

import (
	"context"
	"github.com/celerity-go/celerity/transports"
	"github.com/celerity-go/celerity/transports/memory"
	"sync/atomic"
	"testing"
	"time"
)

// TestTokenPoolAcquireAtLeast: acquireAtLeast waits until need() tokens
// are free, takes all free tokens, and re-evaluates need on poke.
func TestTokenPoolAcquireAtLeast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tp := newTokenPool(8)
	if n := tp.acquire(ctx); n != 8 {
		t.Fatalf("acquire took %d, want all 8", n)
	}
	var need atomic.Int32
	need.Store(4)
	got := make(chan int, 1)
	go func() { got <- tp.acquireAtLeast(ctx, func() int { return int(need.Load()) }) }()
	tp.release(2)
	select {
	case n := <-got:
		t.Fatalf("took %d tokens while need was 4", n)
	case <-time.After(50 * time.Millisecond):
	}
	tp.release(1)
	select {
	case n := <-got:
		t.Fatalf("took %d tokens while need was 4", n)
	case <-time.After(50 * time.Millisecond):
	}
	need.Store(1)
	tp.poke()
	select {
	case n := <-got:
		if n != 3 {
			t.Fatalf("took %d tokens, want the 3 free", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a poke after need dropped did not wake the waiter")
	}
	cancel()
	if n := tp.acquireAtLeast(ctx, func() int { return 1 }); n != 0 {
		t.Fatalf("acquire after cancel returned %d, want 0", n)
	}
}

// TestTokenPoolReleaseWakesOnlyWhenEnough: tokens returned below what the
// waiter needs do not wake it (one wake per batch, not per task).
func TestTokenPoolReleaseWakesOnlyWhenEnough(t *testing.T) {
	tp := newTokenPool(0)
	tp.release(2)
	if len(tp.wake) != 0 {
		t.Fatal("release with no waiter signalled")
	}
	tp.mu.Lock()
	tp.want = 4 // a waiter needing 4, as acquireAtLeast leaves it
	tp.mu.Unlock()
	tp.release(1)
	if len(tp.wake) != 0 {
		t.Fatal("release to 3 of 4 needed woke the waiter")
	}
	tp.release(1)
	if len(tp.wake) != 1 {
		t.Fatal("release to the 4 needed did not wake the waiter")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n := tp.acquireAtLeast(ctx, func() int { return 4 }); n != 4 {
		t.Fatalf("took %d, want 4", n)
	}
	if tp.want != 0 {
		t.Fatalf("want = %d after a successful acquire", tp.want)
	}
}

// TestResultQueue: the writer is signalled for the first result, a full
// batch and an urgent result, but not for every result; put waits while
// resultBacklog results are queued.
func TestResultQueue(t *testing.T) {
	q := newResultQueue()
	signalled := func() bool {
		select {
		case <-q.sig:
			return true
		default:
			return false
		}
	}
	q.put(resultJob{})
	if !signalled() {
		t.Fatal("first result did not wake the writer")
	}
	for range resultBatch - 2 {
		q.put(resultJob{})
	}
	if signalled() {
		t.Fatal("writer woken before the batch was full")
	}
	q.put(resultJob{})
	if !signalled() {
		t.Fatal("a full batch did not wake the writer")
	}
	if n, urgent, _ := q.state(); n != resultBatch || urgent {
		t.Fatalf("state %d urgent=%v, want %d, false", n, urgent, resultBatch)
	}
	if got := q.take(nil); len(got) != resultBatch {
		t.Fatalf("took %d, want %d", len(got), resultBatch)
	}
	q.put(resultJob{})
	signalled()
	q.put(resultJob{settle: &transports.Delivery{Tag: "late"}})
	if !signalled() {
		t.Fatal("a result with a late ack did not wake the writer")
	}
	if _, urgent, _ := q.state(); !urgent {
		t.Fatal("queue not marked urgent")
	}
	q.take(nil)
	for range resultBacklog {
		q.put(resultJob{})
	}
	done := make(chan struct{})
	go func() { q.put(resultJob{}); close(done) }()
	select {
	case <-done:
		t.Fatal("put did not wait with a full backlog")
	case <-time.After(50 * time.Millisecond):
	}
	q.take(nil)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("put still waiting after the writer took the backlog")
	}
}

// TestBlockingFetchIsNotPopping: a consumer without FetchNotify (AMQP,
// memory) blocks in Fetch until the broker pushes a message, which says
// nothing about results on their way; counting it as popping would make
// an idle worker's result wait out resultLinger.
func TestBlockingFetchIsNotPopping(t *testing.T) {
	w, err := NewWorker(memory.New(), nil, Config{Queues: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, context.Background()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for w.pipe.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("worker did not start")
		}
		time.Sleep(time.Millisecond)
	}
	p := w.pipe.Load()
	for range 20 { // the fetch is blocked in Fetch by now
		time.Sleep(5 * time.Millisecond)
		if n := p.popping.Load(); n != 0 || p.busy() {
			t.Fatalf("idle worker with a blocking fetch: popping=%d busy=%v", n, p.busy())
		}
	}
}

// TestBusy: the result writer waits for more results only while more are
// on their way. On a consumer that reports empty pops (Redis) a backlog
// counts while a fetch is out; on one whose fetch always blocks (AMQP) the
// last batch's size alone tells a backlog.
func TestBusy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tracked   bool
		running   int32
		queued    int
		popping   int32
		lastBatch int32
		want      bool
	}{
		{name: "idle", want: false},
		{name: "one task running", running: 1, want: false},
		{name: "two tasks running", running: 2, want: true},
		{name: "a task waiting for an executor", running: 1, queued: 1, want: true},
		{name: "redis backlog, fetch out", tracked: true, popping: 1, lastBatch: 4, want: true},
		{name: "redis backlog, no fetch out", tracked: true, lastBatch: 4, want: false},
		{name: "redis one at a time, fetch out", tracked: true, popping: 1, lastBatch: 1, want: false},
		{name: "amqp backlog", lastBatch: 3, want: true},
		{name: "amqp one at a time", lastBatch: 1, want: false},
		{name: "amqp nothing fetched yet", want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &pipeline{work: make(chan *job, 4), popTracked: tc.tracked}
			p.running.Store(tc.running)
			p.popping.Store(tc.popping)
			p.lastBatch.Store(tc.lastBatch)
			for range tc.queued {
				p.work <- &job{}
			}
			if got := p.busy(); got != tc.want {
				t.Fatalf("busy() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTokenPoolPause: while the pool is paused, releases and pokes do
// not wake the waiting fetcher (the tokens are free all the same); the
// last resume wakes it.
func TestTokenPoolPause(t *testing.T) {
	tp := newTokenPool(2)
	if n := tp.acquire(context.Background()); n != 2 {
		t.Fatalf("acquire = %d, want 2", n)
	}
	got := make(chan int, 1)
	go func() { got <- tp.acquireAtLeast(context.Background(), func() int { return 1 }) }()
	waitWant(t, tp)
	tp.pause()
	tp.pause()
	tp.release(1)
	tp.poke()
	tp.resume()
	select {
	case n := <-got:
		t.Fatalf("woken with %d tokens while paused", n)
	case <-time.After(50 * time.Millisecond):
	}
	tp.release(1)
	tp.resume()
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("after the last resume: acquired %d, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the last resume did not wake the waiter")
	}
	// Paused or not, an acquire that comes by takes free tokens at once.
	tp.release(1)
	tp.pause()
	if n := tp.acquire(context.Background()); n != 1 {
		t.Fatalf("acquire while paused = %d, want 1", n)
	}
	tp.resume()
}

// waitWant waits until a goroutine waits in tp.acquireAtLeast.
func waitWant(t *testing.T, tp *tokenPool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tp.mu.Lock()
		w := tp.want
		tp.mu.Unlock()
		if w > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no waiter")
		}
		time.Sleep(time.Millisecond)
	}
}
