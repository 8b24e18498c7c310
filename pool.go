package celerity

import (
	"errors"
	"fmt"
	"time"
)

// MaxPool is the most executors a worker can run at once, whether set
// by Config.Concurrency, grown by pool_grow or reached by autoscaling.
const MaxPool = 4096

// ErrNotRunning is returned by the pool methods of a worker that is not
// running.
var ErrNotRunning = errors.New("celerity: worker is not running")

// ErrAutoscaling is returned by Grow and Shrink while the worker
// autoscales: the autoscaler owns the pool's size, as in Celery, whose
// pool_grow and pool_shrink then ask to adjust the autoscale range.
var ErrAutoscaling = errors.New("celerity: the pool is autoscaled")

// ErrNotAutoscaling is returned by Autoscale for a worker started
// without autoscaling (Celery: "Autoscale not enabled").
var ErrNotAutoscaling = errors.New("celerity: autoscale not enabled")

// AutoscaleInfo is what `celery inspect stats` reports of the autoscaler.
type AutoscaleInfo struct {
	Max, Min int
	// Current is the number of executors now; Qty the tasks reserved or
	// running, which the autoscaler sizes the pool to.
	Current, Qty int
}

// autoscaler sizes the pool between min and max executors like Celery's
// Autoscaler: up to the number of tasks reserved or running as soon as
// they arrive, and back down once keepalive has passed since the last
// scale-up. Its fields are guarded by the pipeline's sizeMu.
type autoscaler struct {
	max, min  int
	keepalive time.Duration
	lastUp    time.Time
	kick      chan struct{}
}

// resizeLocked changes the number of executors by delta; the caller holds
// sizeMu and has checked the bounds. An executor asked to stop finishes
// the task it is running first. A shrink takes its permits from the free
// ones, and what it still lacks from running tasks as they give theirs
// back (permitDebt), before any waiting task can take them: no task
// starts beyond the new size.
func (p *pipeline) resizeLocked(delta int) {
	switch {
	case delta > 0:
		p.size += delta
		give := delta
		for give > 0 {
			d := p.permitDebt.Load()
			if d == 0 {
				break
			}
			if p.permitDebt.CompareAndSwap(d, d-1) {
				give--
			}
		}
		for range give {
			p.permits <- struct{}{}
		}
		if !p.started {
			return // run starts p.size executors
		}
		start := delta
		// Executors asked to stop that have not yet done so stay instead.
	cancel:
		for start > 0 {
			select {
			case <-p.quit:
				start--
			default:
				break cancel
			}
		}
		for range start {
			p.startExecutor()
		}
	case delta < 0:
		n := -delta
		p.size -= n
		take := n
	free:
		for take > 0 {
			select {
			case <-p.permits:
				take--
			default:
				break free
			}
		}
		p.permitDebt.Add(int64(take))
		if !p.started {
			return
		}
		for range n {
			p.quit <- struct{}{}
		}
	}
}

// releasePermit gives a task's permit back, or to a shrink still owed
// one.
func (p *pipeline) releasePermit() {
	for d := p.permitDebt.Load(); d > 0; d = p.permitDebt.Load() {
		if p.permitDebt.CompareAndSwap(d, d-1) {
			return
		}
	}
	p.permits <- struct{}{}
}

// startExecutor starts one execLoop; the caller holds sizeMu (or the
// pipeline has not started) and the work channel is open.
func (p *pipeline) startExecutor() {
	p.execWG.Add(1)
	p.executors.Add(1)
	go func() {
		defer p.execWG.Done()
		defer p.executors.Add(-1)
		p.execLoop()
	}()
}

// addPrefetch changes the prefetch window by n executors' worth, as
// Celery's consumer._update_prefetch_count does after a resize: tokens
// are added at once, or taken back as deliveries are settled; on AMQP
// the broker's prefetch count follows through heldLoop.
func (p *pipeline) addPrefetch(n int) {
	m := p.w.cfg.PrefetchMultiplier
	if m < 0 || n == 0 {
		return // unlimited prefetch
	}
	p.prefetchBase.Add(int64(n * m))
	p.tokens.adjust(n * m)
	p.kickHeld()
}

// resize is Grow (delta > 0) or Shrink (delta < 0) on the running
// pipeline.
func (p *pipeline) resize(delta int) error {
	p.sizeMu.Lock()
	defer p.sizeMu.Unlock()
	if p.closed {
		return ErrNotRunning
	}
	if p.scale != nil {
		return ErrAutoscaling
	}
	switch {
	case delta > MaxPool-p.size:
		return fmt.Errorf("celerity: cannot grow the pool beyond %d executors (it has %d)", MaxPool, p.size)
	case delta < 1-p.size:
		return fmt.Errorf("celerity: cannot shrink the pool below one executor (it has %d)", p.size)
	}
	p.resizeLocked(delta)
	p.addPrefetch(delta)
	return nil
}

// queued is the autoscaler's measure of demand (Celery: the reserved
// requests, which include the running ones): tasks waiting for an
// executor or running, not counting those held for their ETA or rate
// limit. A task that must wait for an executor is received (tracked) as
// it arrives (see mustWait), so the tracker sees every waiting task.
func (p *pipeline) queued() int {
	tk := p.w.track
	tk.mu.Lock()
	n := len(tk.reserved) + len(tk.active)
	tk.mu.Unlock()
	return max(0, n-int(p.held.Load()))
}

// kickScale asks the autoscaler to look now (a batch arrived).
func (p *pipeline) kickScale() {
	if p.scale != nil {
		select {
		case p.scale.kick <- struct{}{}:
		default:
		}
	}
}

// autoscaleLoop runs maybeScale when tasks arrive and every second, until
// stop is closed.
func (p *pipeline) autoscaleLoop(stop <-chan struct{}) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
		case <-p.scale.kick:
		}
		p.maybeScale()
	}
}

// maybeScale grows the pool to the demand (at most max) at once, and
// shrinks it to the demand (at least min) once keepalive has passed since
// the last scale-up; a pool that never grew is not shrunk, as in Celery.
func (p *pipeline) maybeScale() {
	qty := p.queued()
	p.sizeMu.Lock()
	defer p.sizeMu.Unlock()
	a := p.scale
	if p.closed {
		return
	}
	if want := min(qty, a.max); want > p.size {
		n := want - p.size
		p.w.log.Info(fmt.Sprintf("Scaling up %d processes.", n), "executors", want)
		a.lastUp = time.Now()
		p.resizeLocked(n)
		return
	}
	if want := max(qty, a.min); want < p.size && !a.lastUp.IsZero() && time.Since(a.lastUp) > a.keepalive {
		n := p.size - want
		p.w.log.Info(fmt.Sprintf("Scaling down %d processes.", n), "executors", want)
		p.resizeLocked(-n)
	}
}

// autoscale is Celery's Autoscaler.update: a new max below the pool's
// size shrinks it and moves the prefetch window by the change; a new min
// above it grows it.
func (p *pipeline) autoscale(newMax, newMin *int) (int, int, error) {
	p.sizeMu.Lock()
	defer p.sizeMu.Unlock()
	a := p.scale
	if a == nil {
		return 0, 0, ErrNotAutoscaling
	}
	if p.closed {
		return 0, 0, ErrNotRunning
	}
	hi, lo := a.max, a.min
	if newMax != nil {
		hi = *newMax
	}
	if newMin != nil {
		lo = *newMin
	}
	if err := checkAutoscale(hi, lo); err != nil {
		return 0, 0, err
	}
	if hi < p.size {
		p.resizeLocked(hi - p.size)
	}
	p.addPrefetch(hi - a.max)
	if lo > p.size {
		p.resizeLocked(lo - p.size)
	}
	a.max, a.min = hi, lo
	return hi, lo, nil
}

func checkAutoscale(hi, lo int) error {
	switch {
	case hi < 1 || hi > MaxPool:
		return fmt.Errorf("celerity: autoscale max must be between 1 and %d, not %d", MaxPool, hi)
	case lo < 0 || lo > hi:
		return fmt.Errorf("celerity: autoscale min must be between 0 and max (%d), not %d", hi, lo)
	}
	return nil
}

// autoscaleInfo reports the autoscaler's state; nil without one.
func (p *pipeline) autoscaleInfo() *AutoscaleInfo {
	if p.scale == nil {
		return nil
	}
	qty := p.queued()
	p.sizeMu.Lock()
	defer p.sizeMu.Unlock()
	return &AutoscaleInfo{Max: p.scale.max, Min: p.scale.min, Current: p.size, Qty: qty}
}

// poolSize returns the number of executors and the prefetch count (with
// the ETA increments, like Celery's qos.value).
func (p *pipeline) poolSize() (size, prefetch int) {
	p.sizeMu.Lock()
	size = p.size
	p.sizeMu.Unlock()
	return size, int(p.prefetchBase.Load() + max(p.held.Load(), 0))
}

// Grow adds n executors to the running worker and widens its prefetch
// window by n × PrefetchMultiplier (Celery's pool_grow). It returns
// ErrAutoscaling while the worker autoscales.
func (w *Worker) Grow(n int) error {
	if n < 0 {
		return fmt.Errorf("celerity: cannot grow the pool by %d", n)
	}
	p := w.livePipe()
	if p == nil {
		return ErrNotRunning
	}
	return p.resize(n)
}

// Shrink removes n executors from the running worker and narrows its
// prefetch window by n × PrefetchMultiplier (Celery's pool_shrink). An
// executor running a task stops once the task is done. A pool keeps at
// least one executor; Shrink returns ErrAutoscaling while the worker
// autoscales.
func (w *Worker) Shrink(n int) error {
	if n < 0 {
		return fmt.Errorf("celerity: cannot shrink the pool by %d", n)
	}
	p := w.livePipe()
	if p == nil {
		return ErrNotRunning
	}
	return p.resize(-n)
}

// Autoscale changes the bounds of a worker started with AutoscaleMax
// (Celery's autoscale command); nil leaves a bound as it is. It returns
// the bounds now in force, or ErrNotAutoscaling.
func (w *Worker) Autoscale(newMax, newMin *int) (maxExecutors, minExecutors int, err error) {
	if w.cfg.AutoscaleMax == 0 {
		return 0, 0, ErrNotAutoscaling
	}
	p := w.livePipe()
	if p == nil {
		return 0, 0, ErrNotRunning
	}
	return p.autoscale(newMax, newMin)
}

// livePipe returns the pipeline of Run, or nil before Run; a pipeline
// that has stopped refuses changes (ErrNotRunning).
func (w *Worker) livePipe() *pipeline { return w.pipe.Load() }
