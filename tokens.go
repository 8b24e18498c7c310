package celerity

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/celerity-go/celerity/transports"
)

// tokenPool counts the prefetch budget: one token per reserved message.
type tokenPool struct {
	mu    sync.Mutex
	avail int
	// want is what the waiting acquireAtLeast needs (0: no one waits);
	// release wakes it only once that many are free, so returning tokens
	// one by one does not wake the fetcher for each.
	want int
	wake chan struct{} // signalled when the waiter may proceed
	// pauses > 0 defers waking the waiter (see pause).
	pauses int
}

func newTokenPool(n int) *tokenPool {
	return &tokenPool{avail: n, wake: make(chan struct{}, 1)}
}

// acquire waits for at least one token and takes all that are free. It
// returns 0 when ctx is done.
func (tp *tokenPool) acquire(ctx context.Context) int {
	return tp.acquireAtLeast(ctx, nil)
}

// acquireAtLeast waits until at least need() tokens (and at least one)
// are free and takes all that are. need is evaluated again whenever the
// pool is poked (or enough tokens are released). Only one goroutine may
// wait at a time. It returns 0 when ctx is done.
func (tp *tokenPool) acquireAtLeast(ctx context.Context, need func() int) int {
	for {
		w := 1
		if need != nil {
			w = max(1, need())
		}
		tp.mu.Lock()
		if n := tp.avail; n >= w {
			tp.avail, tp.want = 0, 0
			tp.mu.Unlock()
			return n
		}
		tp.want = w
		tp.mu.Unlock()
		select {
		case <-tp.wake:
		case <-ctx.Done():
			tp.mu.Lock()
			tp.want = 0
			tp.mu.Unlock()
			return 0
		}
	}
}

// debit takes one token without waiting, going into debt when none is
// free: a held task that becomes due is already reserved from the broker,
// so it must not wait for (or compete with) the fetcher, which may be
// parked in a blocking fetch holding every free token. Fetching resumes
// once the debt is paid back by settlements.
func (tp *tokenPool) debit() {
	tp.mu.Lock()
	tp.avail--
	tp.mu.Unlock()
}

// adjust changes the budget by n: more tokens are free at once, fewer
// are taken back as they are released (the pool goes into debt like
// debit).
func (tp *tokenPool) adjust(n int) {
	if n > 0 {
		tp.release(n)
		return
	}
	tp.mu.Lock()
	tp.avail += n
	tp.mu.Unlock()
}

// poke wakes a waiting acquireAtLeast so that it evaluates need again.
func (tp *tokenPool) poke() {
	tp.mu.Lock()
	paused := tp.pauses > 0
	tp.mu.Unlock()
	if !paused {
		tp.signal()
	}
}

func (tp *tokenPool) release(n int) {
	if n <= 0 {
		return
	}
	tp.mu.Lock()
	tp.avail += n
	wake := tp.pauses == 0 && tp.want > 0 && tp.avail >= tp.want
	tp.mu.Unlock()
	if wake {
		tp.signal()
	}
}

// pause defers waking the waiter until the matching resume: tokens
// released meanwhile are free at once for an acquire that comes by, but
// the fetcher parked in acquireAtLeast is woken only when the last pause
// ends. The pipeline pauses the pool while it runs a task in the
// goroutine that fetched it, so that starting the next fetch does not
// compete with the task and its result.
func (tp *tokenPool) pause() {
	tp.mu.Lock()
	tp.pauses++
	tp.mu.Unlock()
}

// resume ends a pause; the last one wakes the waiter to look again.
func (tp *tokenPool) resume() {
	tp.mu.Lock()
	tp.pauses--
	wake := tp.pauses == 0 && tp.want > 0
	tp.mu.Unlock()
	if wake {
		tp.signal()
	}
}

func (tp *tokenPool) signal() {
	select {
	case tp.wake <- struct{}{}:
	default:
	}
}

// etaTimer holds tasks until their ETA in one heap served by one goroutine,
// so waiting tasks never occupy an execution slot.
type etaTimer struct {
	mu      sync.Mutex
	h       etaHeap
	seq     uint64
	kick    chan struct{}
	done    chan struct{}
	stopped bool
	due     func(*job)
	wg      sync.WaitGroup
}

type etaItem struct {
	at  time.Time
	seq uint64
	j   *job
}

type etaHeap []etaItem

func (h etaHeap) Len() int { return len(h) }
func (h etaHeap) Less(i, k int) bool {
	if h[i].at.Equal(h[k].at) {
		return h[i].seq < h[k].seq
	}
	return h[i].at.Before(h[k].at)
}
func (h etaHeap) Swap(i, k int) { h[i], h[k] = h[k], h[i] }
func (h *etaHeap) Push(x any)   { *h = append(*h, x.(etaItem)) }
func (h *etaHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newETATimer(due func(*job)) *etaTimer {
	t := &etaTimer{kick: make(chan struct{}, 1), done: make(chan struct{}), due: due}
	t.wg.Add(1)
	go t.loop()
	return t
}

func (t *etaTimer) add(at time.Time, j *job) {
	t.mu.Lock()
	t.seq++
	heap.Push(&t.h, etaItem{at: at, seq: t.seq, j: j})
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// deliveries returns the deliveries of the held tasks.
func (t *etaTimer) deliveries() []*transports.Delivery {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*transports.Delivery, 0, len(t.h))
	for _, it := range t.h {
		out = append(out, it.j.d)
	}
	return out
}

func (t *etaTimer) loop() {
	defer t.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t.mu.Lock()
		var wait time.Duration = time.Hour
		var ready []*job
		now := time.Now()
		for len(t.h) > 0 {
			if d := t.h[0].at.Sub(now); d > 0 {
				wait = d
				break
			}
			ready = append(ready, heap.Pop(&t.h).(etaItem).j)
		}
		t.mu.Unlock()
		for _, j := range ready {
			t.due(j)
		}
		if len(ready) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-t.kick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-t.done:
			return
		}
	}
}

// stop ends the timer and returns the tasks still held.
func (t *etaTimer) stop() []*job {
	t.mu.Lock()
	if !t.stopped {
		t.stopped = true
		close(t.done)
	}
	t.mu.Unlock()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*job, 0, len(t.h))
	for _, it := range t.h {
		out = append(out, it.j)
	}
	t.h = nil
	return out
}
