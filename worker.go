package celerity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/celerity-go/celerity/internal/ratelimit"
	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/resultstore"
	"github.com/celerity-go/celerity/transports"
)

// Worker consumes task messages from a transport, runs their handlers and
// stores their results. Register handlers before calling Run.
type Worker struct {
	cfg      Config
	tr       transports.Transport
	rb       resultstore.Backend
	reg      *kombu.Registry
	log      *slog.Logger
	pid      int
	handlers map[string]*registered
	mw       []Middleware

	mu      sync.Mutex
	running bool
	// pipe is the running pipeline.
	pipe atomic.Pointer[pipeline]

	// qmu serializes add_consumer and cancel_consumer; added holds the
	// declarations of the queues add_consumer started, for Queues.
	qmu   sync.Mutex
	added []transports.Queue

	canvas  *canvas
	track   *tracker
	revoked revokedSet
	stamps  revokedStamps
	started time.Time
	stop    atomic.Value // context.CancelFunc of the running fetch context
	rateMu  sync.Mutex
	rates   atomic.Pointer[map[string]*ratelimit.Bucket]
	// limits holds the time limits set by SetTimeLimit (Celery's
	// time_limit command), which replace the task's own; nil until the
	// first is set. Guarded for writes by rateMu.
	limits atomic.Pointer[map[string]taskLimits]
}

// NewWorker returns a worker consuming from tr and storing results in rb
// (nil: results are not stored, as with Celery's disabled backend).
func NewWorker(tr transports.Transport, rb resultstore.Backend, cfg Config) (*Worker, error) {
	if tr == nil {
		return nil, errors.New("celerity: nil transport")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	for name, spec := range cfg.RateLimits {
		if _, err := ratelimit.Parse(spec); err != nil {
			return nil, fmt.Errorf("celerity: rate limit of %q: %w", name, err)
		}
	}
	reg, err := kombu.NewRegistry(cfg.AcceptContent)
	if err != nil {
		return nil, fmt.Errorf("celerity: accept_content: %w", err)
	}
	w := &Worker{
		cfg:      cfg,
		tr:       tr,
		rb:       rb,
		reg:      reg,
		log:      cfg.Logger,
		pid:      os.Getpid(),
		handlers: map[string]*registered{},
		track:    newTracker(),
		started:  time.Now(),
		canvas:   &canvas{defaultQueue: cfg.DefaultQueue, routes: cfg.Routes, rb: rb, hostname: cfg.Hostname},
	}
	rates := map[string]*ratelimit.Bucket{}
	w.rates.Store(&rates)
	return w, nil
}

// Hostname returns the worker's node name.
func (w *Worker) Hostname() string { return w.cfg.Hostname }

// Handle registers a raw handler for the task called name.
func (w *Worker) Handle(name string, h Handler, opts ...TaskOption) error {
	if name == "" || h == nil {
		return errors.New("celerity: Handle needs a name and a handler")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		return errors.New("celerity: Handle after Run")
	}
	if _, dup := w.handlers[name]; dup {
		return fmt.Errorf("celerity: task %q registered twice", name)
	}
	r := &registered{name: name, handler: h}
	for _, o := range opts {
		o(&r.opts)
	}
	if _, err := ratelimit.Parse(r.opts.RateLimit); err != nil {
		return fmt.Errorf("celerity: task %q: %w", name, err)
	}
	if r.opts.TimeLimit < 0 || r.opts.SoftTimeLimit < 0 {
		return fmt.Errorf("celerity: task %q: negative time limit", name)
	}
	w.handlers[name] = r
	return nil
}

// Use adds middleware around every handler, outermost first.
func (w *Worker) Use(mw ...Middleware) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mw = append(w.mw, mw...)
}

// Registered returns the registered task names.
func (w *Worker) Registered() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := make([]string, 0, len(w.handlers))
	for n := range w.handlers {
		names = append(names, n)
	}
	return names
}

// Run consumes until fetchCtx is done, then shuts down warmly: it stops
// fetching, hands prefetched-but-unstarted messages back to the broker,
// waits for running tasks and flushes their results and acks. When workCtx
// is done first (cold shutdown) running handlers see their context
// cancelled. Run returns nil after a clean shutdown.
func (w *Worker) Run(fetchCtx, workCtx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("celerity: Run called twice")
	}
	w.running = true
	for _, r := range w.handlers {
		for i := len(w.mw) - 1; i >= 0; i-- {
			r.handler = w.mw[i](r.handler)
		}
	}
	w.mu.Unlock()
	rates := w.buckets()
	w.rates.Store(&rates)
	fetchCtx, stopFetch := context.WithCancel(fetchCtx)
	defer stopFetch()
	w.stop.Store(context.CancelFunc(stopFetch))

	if err := w.tr.Declare(fetchCtx, w.cfg.declarations()...); err != nil {
		return fmt.Errorf("celerity: declare queues: %w", err)
	}
	cons, err := w.tr.Consume(fetchCtx, w.cfg.Queues, w.cfg.brokerPrefetch(w.cfg.prefetch()))
	if err != nil {
		return fmt.Errorf("celerity: consume: %w", err)
	}
	p := newPipeline(w, cons, fetchCtx, workCtx)
	w.pipe.Store(p)
	w.log.Info(fmt.Sprintf("%s ready.", w.cfg.Hostname), "hostname", w.cfg.Hostname,
		"queues", w.cfg.Queues, "concurrency", w.cfg.Concurrency)
	p.run()
	if err := cons.Close(); err != nil {
		w.log.Warn("closing consumer", "error", err)
	}
	return nil
}

// pipeline is one Run: fetcher → executors → result writer → acker.
type pipeline struct {
	w        *Worker
	cons     transports.Consumer
	fetchCtx context.Context
	workCtx  context.Context

	tokens *tokenPool
	// permits holds one entry per free execution slot: a task takes one
	// to run, in an executor or in the fetching goroutine (runDirect),
	// and gives it back with releasePermit. Free and taken permits add up
	// to size, once a shrink has taken its share back from the tasks that
	// were running.
	permits chan struct{}
	// sizeMu guards size, started, closed and scale. size is the number
	// of executors wanted; quit has one entry per executor asked to
	// stop; closed is set once the work channel is closed, after which
	// no executor starts.
	sizeMu    sync.Mutex
	size      int
	started   bool // run has started the executors
	closed    bool
	quit      chan struct{}
	execWG    sync.WaitGroup
	executors atomic.Int32 // execLoops running
	// permitDebt counts the permits a shrink still has to take back
	// from running tasks (releasePermit).
	permitDebt atomic.Int64
	// scale is the autoscaler, nil unless Config.AutoscaleMax is set.
	scale   *autoscaler
	work    chan *job
	results *resultQueue
	// storeMu is held while results are written and their messages
	// settled, by the result writer or by storeDirect.
	storeMu sync.Mutex
	acks    chan ackJob
	timer   *etaTimer

	restoreMu sync.Mutex
	restore   []*transports.Delivery

	held       atomic.Int64 // messages parked in the timer
	heldKick   chan struct{}
	abandoned  atomic.Int64 // handlers still running past their hard time limit
	running    atomic.Int32 // tasks in execute
	popping    atomic.Int32 // fetches in flight that have not found the broker empty
	lastBatch  atomic.Int32 // messages the last non-empty fetch brought
	directRuns atomic.Int64 // jobs runDirect ran (tests)
	opCtx      atomic.Pointer[opDeadline]
	pauseMu    sync.Mutex
	pauses     []*directPause // of direct runs in progress
	heldStop   chan struct{}
	// prefetchBase is the prefetch window without the ETA increments;
	// a resize moves it.
	prefetchBase atomic.Int64
	// popTracked: the consumer reports when a fetch finds the broker empty
	// (see concurrentFetcher), so popping counts the fetches bringing
	// messages.
	popTracked bool
}

// job is one task between fetch and completion.
type job struct {
	d   *transports.Delivery
	t   *protocolv2.Task
	reg *registered
	req *Request
	// rated is set once the job holds its rate-limit reservation.
	rated bool
	// terminated is set when a revoke with terminate cancelled the job.
	terminated atomic.Bool
	// direct: run by the goroutine that fetched it (runDirect).
	direct bool
	// revokedBy is the stamp that revoked the job, for the log line.
	revokedBy string
}

type resultJob struct {
	meta   *resultstore.Meta // nil: nothing to store
	settle *transports.Delivery
	reject bool // settle by reject(requeue=false) instead of ack
}

type ackJob struct {
	d       *transports.Delivery
	reject  bool
	requeue bool
}

// lazyHeaderer is implemented by consumers that can hand out messages
// with their headers still JSON text (the Redis consumer): the pipeline
// reads them straight into the task (protocolv2.DecodeKnown) instead of
// building a header map first.
type lazyHeaderer interface {
	LazyHeaders()
}

func newPipeline(w *Worker, cons transports.Consumer, fetchCtx, workCtx context.Context) *pipeline {
	pf := w.cfg.prefetch()
	_, tracked := cons.(concurrentFetcher)
	if lh, ok := cons.(lazyHeaderer); ok {
		lh.LazyHeaders()
	}
	p := &pipeline{
		w: w, cons: cons, fetchCtx: fetchCtx, workCtx: workCtx,
		tokens:     newTokenPool(pf),
		permits:    make(chan struct{}, 2*MaxPool),
		quit:       make(chan struct{}, MaxPool),
		size:       w.cfg.Concurrency,
		work:       make(chan *job, pf),
		results:    newResultQueue(),
		acks:       make(chan ackJob, pf+64),
		heldKick:   make(chan struct{}, 1),
		heldStop:   make(chan struct{}),
		popTracked: tracked,
	}
	p.prefetchBase.Store(int64(pf))
	if w.cfg.AutoscaleMax > 0 {
		p.size = w.cfg.AutoscaleMin
		p.scale = &autoscaler{max: w.cfg.AutoscaleMax, min: w.cfg.AutoscaleMin,
			keepalive: w.cfg.AutoscaleKeepalive, kick: make(chan struct{}, 1)}
	}
	for range p.size {
		p.permits <- struct{}{}
	}
	return p
}

func (p *pipeline) run() {
	p.timer = newETATimer(func(j *job) { p.dispatchDue(j) })
	var fetchWG, resWG, ackWG, heldWG sync.WaitGroup
	heldWG.Add(1)
	go func() { defer heldWG.Done(); p.heldLoop() }()
	ackWG.Add(1)
	go func() { defer ackWG.Done(); p.ackLoop() }()
	resWG.Add(1)
	go func() { defer resWG.Done(); p.resultLoop() }()
	p.sizeMu.Lock()
	p.started = true
	for range p.size {
		p.startExecutor()
	}
	p.sizeMu.Unlock()
	fetchWG.Add(1)
	go func() { defer fetchWG.Done(); p.fetchLoop() }()
	watchStop := make(chan struct{})
	if p.popTracked {
		heldWG.Add(1)
		go func() { defer heldWG.Done(); p.directWatch(watchStop) }()
	}
	if p.scale != nil {
		heldWG.Add(1)
		go func() { defer heldWG.Done(); p.autoscaleLoop(watchStop) }()
	}

	fetchWG.Wait()
	close(watchStop)
	// Held ETA tasks go back to the broker; then no one sends more work.
	for _, j := range p.timer.stop() {
		p.held.Add(-1)
		p.handBack(j.d)
	}
	close(p.heldStop)
	heldWG.Wait()
	p.sizeMu.Lock()
	p.closed = true
	close(p.work)
	p.sizeMu.Unlock()
	p.execWG.Wait()
	p.results.close()
	resWG.Wait()
	if ds := p.takeRestore(); len(ds) > 0 {
		p.w.log.Warn(fmt.Sprintf("Restoring %d unacknowledged message(s)", len(ds)), "count", len(ds))
		ctx, cancel := context.WithTimeout(context.WithoutCancel(p.workCtx), 30*time.Second)
		if err := p.cons.Restore(ctx, ds...); err != nil {
			p.w.log.Error("restoring unacknowledged messages", "error", err)
		}
		cancel()
	}
	close(p.acks)
	ackWG.Wait()
}

func (p *pipeline) handBack(d *transports.Delivery) {
	p.restoreMu.Lock()
	p.restore = append(p.restore, d)
	p.restoreMu.Unlock()
}

func (p *pipeline) takeRestore() []*transports.Delivery {
	p.restoreMu.Lock()
	defer p.restoreMu.Unlock()
	ds := p.restore
	p.restore = nil
	return ds
}

// concurrentFetcher is implemented by consumers whose Fetch may run
// concurrently with itself (the Redis consumer): FetchConcurrency is how
// many fetches the pipeline keeps in flight, and FetchNotify is Fetch
// calling idle when it finds every queue empty and starts waiting.
type concurrentFetcher interface {
	FetchConcurrency() int
	FetchNotify(ctx context.Context, max int, idle func()) ([]*transports.Delivery, error)
}

// fetchLoop reserves messages while the prefetch budget allows. Every
// fetch takes all free tokens first, so the messages reserved and not yet
// started never exceed the budget. With a consumer that allows it, up to
// FetchConcurrency fetches are in flight: tokens given back while a fetch
// waits for the broker start the next fetch at once instead of idling
// until the previous one returns. Batches reach the executors in the
// order their fetches were issued, except that a fetch waiting for the
// broker to have a message (it popped nothing) holds back no later one.
func (p *pipeline) fetchLoop() {
	slots := 1
	fetch := func(n int, _ func()) ([]*transports.Delivery, error) { return p.cons.Fetch(p.fetchCtx, n) }
	// Only a consumer that reports when it finds the broker empty tells a
	// fetch bringing messages from one waiting for them; a plain Fetch
	// (AMQP: deliveries pushed by the broker) never counts as popping.
	track := p.popTracked
	if cf, ok := p.cons.(concurrentFetcher); ok {
		slots = max(1, cf.FetchConcurrency())
		fetch = func(n int, idle func()) ([]*transports.Delivery, error) {
			return cf.FetchNotify(p.fetchCtx, n, idle)
		}
	}
	free := make(chan struct{}, slots)
	// p.popping counts fetches in flight that have not reported an empty
	// broker. While one is out, the next fetch waits for half the budget
	// instead of going out with a token or two: fewer, larger round trips
	// cost the broker and the worker less per message, and the fetch in
	// flight keeps the executors fed meanwhile. When every fetch in flight
	// is waiting for a message, a single free token goes out at once.
	need := func() int {
		if p.popping.Load() > 0 {
			return max(1, int(p.prefetchBase.Load())/2)
		}
		return 1
	}
	// After a failed fetch no new fetch starts before pause (unix ns).
	var backoff, pause atomic.Int64
	backoff.Store(int64(100 * time.Millisecond))
	// one fetch of n tokens: it hands its batch on once the fetch before
	// it (prev) has, then closes done. slot is the fetch's place among
	// the slots, given back by the caller when one returns, or earlier by
	// a task run in this goroutine that outlasts directGrace.
	one := func(n int, prev, done chan struct{}, slot *fetchSlot) {
		var once sync.Once
		release := func() {
			once.Do(func() {
				close(done)
				if track && p.popping.Add(-1) == 0 {
					p.results.nudge()
				}
				p.tokens.poke()
			})
		}
		// waited: the fetch found the broker empty and waited for a
		// message (idle is called in this goroutine, before it returns).
		waited := false
		ds, err := fetch(n, func() { waited = true; release() })
		if len(ds) > 0 {
			p.lastBatch.Store(int32(len(ds)))
		}
		var direct *directPause
		if track && waited && len(ds) == 1 {
			if direct = p.tryDirect(); direct != nil {
				direct.slot = slot
			}
		}
		p.tokens.release(n - len(ds))
		<-prev
		if direct != nil {
			p.runDirect(&job{d: ds[0]}, direct)
		} else {
			for _, d := range ds {
				j := &job{d: d}
				if p.mustWait() && !p.receive(j) {
					continue
				}
				p.work <- j
			}
		}
		if len(ds) > 0 {
			p.kickScale()
		}
		release()
		if err == nil {
			backoff.Store(int64(100 * time.Millisecond))
			return
		}
		if p.fetchCtx.Err() != nil {
			return
		}
		wait := time.Duration(backoff.Load())
		backoff.Store(int64(min(wait*2, 10*time.Second)))
		pause.Store(time.Now().Add(wait).UnixNano())
		p.w.log.Error("consumer: cannot fetch, retrying", "error", err, "retry_in", wait)
	}
	// The fetches run in long-lived goroutines: a fresh goroutine per
	// fetch grew its stack through the Redis client's call path every
	// time (about a sixth of the fetch path's CPU). A request goes to an
	// idle one, or to a new one when all are busy: usually there are as
	// many as slots, but a goroutine running a long task (runDirect) has
	// given its slot back, and the next fetch must not wait for the task.
	type fetchReq struct {
		n          int
		prev, done chan struct{}
	}
	reqs := make(chan fetchReq)
	var idle atomic.Int32 // goroutines waiting for a request
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(reqs)
	serve := func(r fetchReq) {
		defer wg.Done()
		slot := &fetchSlot{free: free}
		for ok := true; ok; r, ok = <-reqs {
			slot.taken.Store(true)
			one(r.n, r.prev, r.done, slot)
			slot.release()
			idle.Add(1)
		}
	}
	send := func(r fetchReq) {
		for v := idle.Load(); v > 0; v = idle.Load() {
			if idle.CompareAndSwap(v, v-1) {
				reqs <- r // an idle goroutine is waiting, or about to
				return
			}
		}
		wg.Add(1)
		go serve(r)
	}
	prev := make(chan struct{})
	close(prev)
	for p.fetchCtx.Err() == nil {
		select {
		case free <- struct{}{}:
		case <-p.fetchCtx.Done():
			return
		}
		if d := time.Until(time.Unix(0, pause.Load())); d > 0 {
			select {
			case <-time.After(d):
			case <-p.fetchCtx.Done():
				return
			}
		}
		n := p.tokens.acquireAtLeast(p.fetchCtx, need)
		if n == 0 {
			return
		}
		done := make(chan struct{})
		if track {
			p.popping.Add(1)
		}
		send(fetchReq{n: n, prev: prev, done: done})
		prev = done
	}
}

// busy reports whether more results are on their way soon: another task
// is running or waiting for an executor, or the broker has a backlog (the
// last fetch brought more than one message) and, on Redis, a fetch is out.
// A worker serving one task at a time is not busy: a fetch then usually
// finds the queue empty, and its result must not wait for that fetch. On
// AMQP a fetch is always out, blocked until the broker pushes a message,
// so only the last batch's size tells a backlog from a quiet queue.
func (p *pipeline) busy() bool {
	if p.running.Load() > 1 || len(p.work) > 0 {
		return true
	}
	if p.lastBatch.Load() <= 1 {
		return false
	}
	return !p.popTracked || p.popping.Load() > 0
}

// mustWait reports whether a job handed to the executors now would wait
// for one: as many are queued as there are free slots. Such a job is
// received at once by the fetching goroutine, as Celery's consumer does:
// it is logged and announced (task-received), and listed by inspect
// reserved while it waits. A job that will start at once is left to the
// executor to decode, which spreads the work over the cores.
func (p *pipeline) mustWait() bool { return len(p.work) >= len(p.permits) }

// execLoop is one executor: it runs jobs until the work channel closes
// or a shrink asks it to stop.
func (p *pipeline) execLoop() {
	for {
		select {
		case <-p.quit:
			return
		case j, ok := <-p.work:
			if !ok {
				return
			}
			<-p.permits
			p.runJob(j)
			p.releasePermit()
		}
	}
}

// runJob receives (if new) and executes a job; the caller holds a permit.
func (p *pipeline) runJob(j *job) {
	if j.t == nil {
		if !p.receive(j) {
			return
		}
	}
	if p.fetchCtx.Err() != nil {
		// Warm shutdown: not started, so it goes back.
		p.handBack(j.d)
		return
	}
	p.running.Add(1)
	p.execute(j)
	if p.running.Add(-1) == 0 && len(p.work) == 0 {
		p.results.nudge() // the writer may be waiting for more
	}
}

// A task run by runDirect defers the next fetch until its result is
// written; directWatch ends the deferral of one that has run for
// directGrace, looking every directCheck (a timer per task would cost
// the task's way to its result more than the deferral saves).
const (
	directGrace = time.Millisecond
	directCheck = 100 * time.Millisecond
)

// directPause is the pause runDirect puts on the token pool.
type directPause struct {
	once  sync.Once
	since time.Time
	// slot is the fetch slot of the goroutine running the task, given
	// back when the pause ends so that a long task does not hold up
	// fetching.
	slot *fetchSlot
}

func (d *directPause) end(p *pipeline) {
	d.once.Do(func() {
		p.tokens.resume()
		if d.slot != nil {
			d.slot.release()
		}
	})
}

// fetchSlot is a fetch's place among the FetchConcurrency fetches in
// flight (an entry in free), given back once.
type fetchSlot struct {
	free  chan struct{}
	taken atomic.Bool
}

func (s *fetchSlot) release() {
	if s.taken.CompareAndSwap(true, false) {
		<-s.free
	}
}

// directWatch ends the pauses of direct runs that have lasted directGrace,
// every directCheck, until stop is closed.
func (p *pipeline) directWatch(stop <-chan struct{}) {
	tk := time.NewTicker(directCheck)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tk.C:
			p.pauseMu.Lock()
			for _, d := range p.pauses {
				if now.Sub(d.since) >= directGrace {
					d.end(p)
				}
			}
			p.pauseMu.Unlock()
		}
	}
}

// tryDirect decides whether a message a fetch waited for may run in the
// fetching goroutine: no job is waiting for an executor and a permit is
// free. If so it takes the permit, pauses the token pool and returns the
// pause, for runDirect; otherwise nil.
func (p *pipeline) tryDirect() *directPause {
	if len(p.work) > 0 || p.fetchCtx.Err() != nil {
		return nil
	}
	select {
	case <-p.permits:
	default:
		return nil
	}
	p.tokens.pause()
	d := &directPause{since: time.Now()}
	p.pauseMu.Lock()
	p.pauses = append(p.pauses, d)
	p.pauseMu.Unlock()
	return d
}

// runDirect runs a job in the goroutine that fetched it, for a worker
// with an idle executor and an idle queue: handing a lone message to an
// executor and its result to the writer costs two goroutine wake-ups,
// each tens of microseconds on a busy or virtual machine, and a client
// waiting for the result pays them (Celery's client reads the result
// once right after publishing, then waits on pubsub, which costs it far
// more). The next fetch waits (the token pool is paused) until the
// result is written, or for a long task until directWatch looks, so it
// does not compete with the task either. d is tryDirect's: runDirect
// ends the pause and gives the permit back.
func (p *pipeline) runDirect(j *job, d *directPause) {
	j.direct = true
	p.directRuns.Add(1)
	p.runJob(j)
	p.pauseMu.Lock()
	if i := slices.Index(p.pauses, d); i >= 0 {
		p.pauses = slices.Delete(p.pauses, i, i+1)
	}
	p.pauseMu.Unlock()
	d.end(p)
	p.releasePermit()
}

// storeDirect writes r at once from the calling goroutine when the result
// writer is idle and nothing is queued for it (so results stay in
// order), and settles its message after; it reports whether it did.
func (p *pipeline) storeDirect(r resultJob) bool {
	if !p.storeMu.TryLock() {
		return false
	}
	defer p.storeMu.Unlock()
	if n, _, closed := p.results.state(); n > 0 || closed {
		return false
	}
	p.storeAndSettle([]resultJob{r}, nil)
	return true
}

// storeAndSettle writes the jobs' results in one call (retrying while the
// backend is unreachable), then settles their messages: a result is
// always written before its message is acknowledged. metas is scratch
// space for the documents, returned for reuse. The caller holds storeMu.
func (p *pipeline) storeAndSettle(jobs []resultJob, metas []*resultstore.Meta) []*resultstore.Meta {
	for _, r := range jobs {
		if r.meta != nil {
			metas = append(metas, r.meta)
		}
	}
	if len(metas) > 0 && p.w.rb != nil {
		p.retryBroker("storing results", func(ctx context.Context) error { return p.w.rb.Store(ctx, metas...) })
	}
	for _, r := range jobs {
		if r.settle != nil {
			p.settle(r.settle, r.reject, false)
		}
	}
	return metas
}

// dispatchDue is called by the ETA timer when a held task is due.
func (p *pipeline) dispatchDue(j *job) {
	if at, wait := p.rateReserve(j); wait {
		// Due, but its task's rate limit admits it later: stay parked.
		p.timer.add(at, j)
		return
	}
	p.unhold()
	p.tokens.debit()
	select {
	case p.work <- j:
	case <-p.fetchCtx.Done():
		p.tokens.release(1)
		p.handBack(j.d)
	}
}

// keeper is implemented by consumers that record a delivery as unacked
// only if it is not acknowledged soon after the hand-out (the Redis
// consumer, for a message BRPOP brought): Keep says the worker will hold
// the deliveries unacknowledged for a while (acks late, ETA, rate limit),
// so their records must not wait.
type keeper interface {
	Keep(ds ...*transports.Delivery)
}

// keep tells the consumer that d stays unacknowledged for a while.
func (p *pipeline) keep(d *transports.Delivery) {
	if k, ok := p.cons.(keeper); ok {
		k.Keep(d)
	}
}

// asyncAcker is implemented by consumers that batch and retry acks
// themselves (the Redis consumer: the next fetch carries them), so an ack
// needs no round trip through the ack loop.
type asyncAcker interface {
	AckAsync(ds ...*transports.Delivery)
}

// settle acknowledges or rejects a delivery and gives its prefetch token
// back.
func (p *pipeline) settle(d *transports.Delivery, reject, requeue bool) {
	if aa, ok := p.cons.(asyncAcker); ok && !reject {
		aa.AckAsync(d)
	} else {
		p.acks <- ackJob{d: d, reject: reject, requeue: requeue}
	}
	p.tokens.release(1)
}

// ackLoop settles deliveries, acking in batches.
func (p *pipeline) ackLoop() {
	batch := make([]*transports.Delivery, 0, 256)
	for first := range p.acks {
		batch = batch[:0]
		p.settleOne(first, &batch)
	drain:
		for len(batch) < cap(batch) {
			select {
			case a, ok := <-p.acks:
				if !ok {
					break drain
				}
				p.settleOne(a, &batch)
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			p.retryBroker("ack", func(ctx context.Context) error { return p.cons.Ack(ctx, batch...) })
		}
	}
}

func (p *pipeline) settleOne(a ackJob, batch *[]*transports.Delivery) {
	if !a.reject {
		*batch = append(*batch, a.d)
		return
	}
	p.retryBroker("reject", func(ctx context.Context) error { return p.cons.Reject(ctx, a.d, a.requeue) })
}

// retryBroker runs op until it succeeds, with backoff, giving up only once
// the work context is done (the broker then redelivers what was not
// settled).
func (p *pipeline) retryBroker(what string, op func(context.Context) error) {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := op(p.opContext())
		if err == nil || errors.Is(err, transports.ErrClosed) {
			return
		}
		if errors.Is(err, transports.ErrStaleDelivery) {
			p.w.log.Warn(what+": the broker already requeued the message", "error", err)
			return
		}
		if p.workCtx.Err() != nil && attempt > 2 {
			p.w.log.Error(what+" failed; the broker will redeliver", "error", err)
			return
		}
		p.w.log.Warn(what+" failed, retrying", "error", err, "retry_in", backoff)
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}

// opDeadline is a context shared by broker and backend calls.
type opDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc // not called: the context ends at its deadline
	renew  time.Time          // hand out a fresh one from then on
}

// opContext returns a context for one broker or backend call whose
// deadline is 20 to 30 seconds away. Calls made within 10 seconds of one
// another share it, so a call arms no timer of its own: arming one wakes
// an idle thread of the Go runtime, a cost an idle worker's task would
// pay on its way to the result.
func (p *pipeline) opContext() context.Context {
	now := time.Now()
	if d := p.opCtx.Load(); d != nil && now.Before(d.renew) {
		return d.ctx
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(p.workCtx), now.Add(30*time.Second))
	d := &opDeadline{ctx: ctx, cancel: cancel, renew: now.Add(10 * time.Second)}
	p.opCtx.Store(d)
	return ctx
}

// resultLinger bounds how long the result writer waits for more results
// to join a batch while more tasks are in the pipeline, and resultBatch is
// the batch size at which it stops waiting. Under load this turns many
// small writes into few large ones (each round trip costs the backend
// more than the documents in it); an idle worker's result is written at
// once, and a batch with a late ack waiting on it is never held back.
// resultBacklog bounds the results waiting to be written: executors wait
// when the backend falls that far behind.
const (
	resultLinger  = 500 * time.Microsecond
	resultBatch   = 64
	resultBacklog = 4096
)

// resultQueue hands results from the executors to the result writer. A
// put wakes the writer only when the queue was empty, is full enough, or
// the result is urgent, so under load the writer is not woken per result.
type resultQueue struct {
	mu     sync.Mutex
	space  *sync.Cond // signalled when the writer takes jobs
	jobs   []resultJob
	urgent bool // a queued job must not wait (a late ack depends on it)
	closed bool
	sig    chan struct{} // cap 1: wakes the writer
}

func newResultQueue() *resultQueue {
	q := &resultQueue{sig: make(chan struct{}, 1)}
	q.space = sync.NewCond(&q.mu)
	return q
}

func (q *resultQueue) signal() {
	select {
	case q.sig <- struct{}{}:
	default:
	}
}

// nudge wakes a writer that lingers for more results (it has some
// queued) to look again whether more are coming; a writer with nothing
// queued is left asleep.
func (q *resultQueue) nudge() {
	q.mu.Lock()
	n := len(q.jobs)
	q.mu.Unlock()
	if n > 0 {
		q.signal()
	}
}

// put queues r, waiting while resultBacklog results are queued.
func (q *resultQueue) put(r resultJob) {
	urgent := r.settle != nil
	q.mu.Lock()
	for len(q.jobs) >= resultBacklog && !q.closed {
		q.space.Wait()
	}
	q.jobs = append(q.jobs, r)
	n := len(q.jobs)
	q.urgent = q.urgent || urgent
	q.mu.Unlock()
	if n == 1 || n >= resultBatch || urgent {
		q.signal()
	}
}

// state reports how many results are queued, whether one is urgent and
// whether the queue is closed.
func (q *resultQueue) state() (n int, urgent, closed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.jobs), q.urgent, q.closed
}

// take swaps the queued jobs for buf (emptied) and returns them.
func (q *resultQueue) take(buf []resultJob) []resultJob {
	q.mu.Lock()
	out := q.jobs
	q.jobs = buf[:0]
	q.urgent = false
	q.mu.Unlock()
	q.space.Broadcast()
	return out
}

func (q *resultQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.space.Broadcast()
	q.signal()
}

// resultLoop stores results in batches, then settles the late-acked
// deliveries whose results were in the batch: a result is always written
// before its message is acknowledged.
func (p *pipeline) resultLoop() {
	q := p.results
	metas := make([]*resultstore.Meta, 0, 256)
	var jobs, spare []resultJob
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		<-q.sig
		n, urgent, closed := q.state()
		if n > 0 && n < resultBatch && !urgent && !closed && p.busy() {
			linger.Reset(resultLinger)
		wait:
			for {
				select {
				case <-q.sig:
				case <-linger.C:
					break wait
				}
				n, urgent, closed = q.state()
				if n >= resultBatch || urgent || closed || !p.busy() {
					linger.Stop()
					break wait
				}
			}
		}
		p.storeMu.Lock()
		jobs = q.take(spare)
		if len(jobs) == 0 {
			p.storeMu.Unlock()
			spare = jobs
			if closed {
				return
			}
			continue
		}
		metas = p.storeAndSettle(jobs, metas[:0])
		p.storeMu.Unlock()
		clear(jobs)
		spare = jobs
		clear(metas)
		// More may have been queued meanwhile without a signal.
		if n, _, closed := q.state(); n > 0 || closed {
			q.signal()
		}
	}
}

// receive decodes a fresh delivery and decides what happens to it. It
// returns true when the job is ready to execute now.
func (p *pipeline) receive(j *job) bool {
	w := p.w
	d := j.d
	t, err := protocolv2.DecodeKnown(d.Message, w.reg, func(name string) bool {
		_, ok := w.handlers[name]
		return ok
	})
	if err != nil {
		var ute *protocolv2.UnknownTaskError
		if errors.As(err, &ute) {
			p.unknownTask(d, ute.Name)
		} else {
			p.badMessage(d, err)
		}
		return false
	}
	reg, ok := w.handlers[t.Name]
	if !ok {
		p.unknownTask(d, t.Name)
		return false
	}
	if tz := w.cfg.Timezone; tz != nil {
		t.ETA = inZone(t.ETA, tz)
		t.Expires = inZone(t.Expires, tz)
	}
	j.t, j.reg = t, reg
	j.req = p.newRequest(d, t)
	if p.acksLate(j) {
		p.keep(d) // its record must be in place while it runs
	}
	w.track.reserve(j)
	if w.log.Enabled(p.fetchCtx, slog.LevelInfo) {
		attrs := []any{"task_id", t.ID, "task_name", t.Name}
		if !t.ETA.IsZero() {
			attrs = append(attrs, "eta", t.ETA)
		}
		w.log.Info(fmt.Sprintf("Task %s[%s] received", t.Name, t.ID), attrs...)
	}
	if p.observed() {
		p.emit(&TaskEvent{Type: EventTaskReceived, Request: j.req})
	}
	if w.revoked.has(t.ID) || p.revokedByStamp(j) {
		p.revokedTask(j, false, false)
		return false
	}
	if p.expired(j) {
		return false
	}
	if !t.ETA.IsZero() && time.Until(t.ETA) > 0 {
		p.hold(j, t.ETA)
		return false
	}
	if at, wait := p.rateReserve(j); wait {
		p.hold(j, at)
		return false
	}
	return true
}

func (p *pipeline) newRequest(d *transports.Delivery, t *protocolv2.Task) *Request {
	m := d.Message
	return &Request{
		ID: t.ID, Name: t.Name, Args: t.Args, Kwargs: t.Kwargs,
		Retries: t.Retries, ETA: t.ETA, Expires: t.Expires,
		RootID: t.RootID, ParentID: t.ParentID, Group: t.Group, GroupIndex: t.GroupIndex,
		ReplyTo: m.Properties.ReplyTo, CorrelationID: m.Properties.CorrelationID,
		Hostname: p.w.cfg.Hostname,
		DeliveryInfo: DeliveryInfo{
			Exchange:    m.Properties.DeliveryInfo.Exchange,
			RoutingKey:  m.Properties.DeliveryInfo.RoutingKey,
			Priority:    m.Properties.Priority,
			Redelivered: d.Redelivered,
		},
		Headers: t.Extra,
		Message: t,
	}
}

// expired stores REVOKED for a task past its expiry and acks it.
func (p *pipeline) expired(j *job) bool {
	t := j.t
	if t.Expires.IsZero() || time.Now().Before(t.Expires) {
		return false
	}
	p.revokedTask(j, true, false)
	return true
}

// unknownTask does what Celery does with a task nobody registered: log,
// store FAILURE NotRegistered, reject without requeue.
func (p *pipeline) unknownTask(d *transports.Delivery, name string) {
	m := d.Message
	_ = m.DecodeHeaders() // for the log; the transport checked the text
	id, _ := m.Headers["id"].(string)
	if id == "" {
		id = m.Properties.CorrelationID
	}
	p.w.log.Error(fmt.Sprintf("Received unregistered task of type %s.\n"+
		"The message has been ignored and discarded.\n\n"+
		"Did you remember to import the module containing this task?\n"+
		"Or maybe you're using relative imports?\n\n"+
		"Please see\nhttps://docs.celeryq.dev/en/latest/internals/protocol.html\n"+
		"for more information.\n\n"+
		"The full contents of the message headers:\n%v\n\n"+
		"The delivery info for this task is:\n%v",
		protocolv2.PyRepr(name), m.Headers, m.Properties.DeliveryInfo),
		"task_id", id, "task_name", name)
	if p.observed() {
		p.emit(&TaskEvent{Type: EventTaskFailed, TaskID: id, TaskName: name,
			Exception: "NotRegistered(" + protocolv2.PyRepr(name) + ")"})
	}
	if id != "" && p.w.rb != nil {
		meta := &resultstore.Meta{
			TaskID: id, Status: resultstore.Failure,
			Result:        &resultstore.ExceptionInfo{Type: "NotRegistered", Module: "celery.exceptions", Message: []any{name}},
			Children:      []any{},
			DateDone:      time.Now().UTC(),
			ReplyTo:       m.Properties.ReplyTo,
			CorrelationID: m.Properties.CorrelationID,
			TypedJSON:     p.typedJSON(messageStamped(m)),
		}
		if p.w.cfg.ResultExtended {
			meta.Extended = &resultstore.Extended{Unknown: true}
		}
		p.results.put(resultJob{meta: meta, settle: d, reject: true})
		return
	}
	p.settle(d, true, false)
}

// badMessage handles a message that cannot become a task, as Celery does.
func (p *pipeline) badMessage(d *transports.Delivery, err error) {
	m := d.Message
	_ = m.DecodeHeaders() // for the log; the transport checked the text
	id, _ := m.Headers["id"].(string)
	var cd *kombu.ContentDisallowedError
	var de *kombu.DecodeError
	if p.observed() {
		name, _ := m.Headers["task"].(string)
		p.emit(&TaskEvent{Type: EventTaskRejected, TaskID: id, TaskName: name})
	}
	switch {
	case errors.Is(err, protocolv2.ErrUnknownMessage):
		p.w.log.Warn("Received and deleted unknown message.  Wrong destination?!?", "task_id", id, "reason", err.Error())
		p.settle(d, true, false)
	case errors.As(err, &cd):
		p.w.log.Error("Received invalid task message: "+err.Error(), "task_id", id, "reason", err.Error())
		p.settle(d, true, false)
	case errors.As(err, &de):
		p.w.log.Error(fmt.Sprintf("Can't decode message body: %v [type:%s encoding:%s]", err,
			protocolv2.PyRepr(m.ContentType), protocolv2.PyRepr(m.ContentEncoding)),
			"task_id", id, "reason", err.Error(), "level", "CRITICAL")
		p.settle(d, false, false)
	default:
		p.w.log.Error("Received invalid task message: "+err.Error(), "task_id", id, "reason", err.Error())
		p.settle(d, true, false)
	}
}

// typedJSON reports whether JSON written for a message uses kombu's type
// markers: as configured, or (auto) when the message came from Celery
// 5.3+, which sends stamped_headers.
func (p *pipeline) typedJSON(stamped bool) bool {
	switch p.w.cfg.ResultJSON {
	case ResultJSONTyped:
		return true
	case ResultJSONPlain:
		return false
	}
	return stamped
}

// messageStamped reports a stamped_headers header on m, building its
// header map if the transport left the headers as text.
func messageStamped(m *kombu.Message) bool {
	_ = m.DecodeHeaders() // the transport checked the text
	_, ok := m.Headers["stamped_headers"]
	return ok
}

func (p *pipeline) acksLate(j *job) bool {
	if j.reg.opts.AcksLate != nil {
		return *j.reg.opts.AcksLate
	}
	return p.w.cfg.AcksLate
}

func (p *pipeline) trackStarted(j *job) bool {
	if j.reg.opts.TrackStarted != nil {
		return *j.reg.opts.TrackStarted
	}
	return p.w.cfg.TrackStarted
}

func (p *pipeline) ignoreResult(j *job) bool {
	return j.reg.opts.IgnoreResult || j.t.IgnoreResult || p.w.rb == nil
}

func (p *pipeline) newMeta(j *job, status string) *resultstore.Meta {
	t := j.t
	m := &resultstore.Meta{
		TaskID: t.ID, Status: status, Children: []any{},
		GroupID: t.Group, ParentID: t.ParentID,
		ReplyTo: j.req.ReplyTo, CorrelationID: j.req.CorrelationID,
		TypedJSON: p.typedJSON(j.t.Stamped),
	}
	if resultstore.Ready(status) {
		m.DateDone = time.Now().UTC()
	}
	if p.w.cfg.ResultExtended {
		m.Extended = &resultstore.Extended{
			Name: t.Name, Args: t.Args, Kwargs: t.Kwargs, Worker: p.w.cfg.Hostname,
			Retries: t.Retries, Queue: j.req.DeliveryInfo.RoutingKey,
		}
	}
	return m
}

// finish stores meta (unless results are ignored) and settles the message
// after the store when it is still unsettled.
func (p *pipeline) finish(j *job, meta *resultstore.Meta, settled bool) {
	if meta != nil && p.ignoreResult(j) {
		meta = nil
	}
	p.store(j, meta, settled, false)
}

// finishError is finish for FAILURE, RETRY and REVOKED, which are stored
// for ignored results too with store_errors_even_if_ignored; reject
// settles with reject(requeue=false) instead of an ack.
func (p *pipeline) finishError(j *job, meta *resultstore.Meta, settled, reject bool) {
	if meta != nil && !p.storeErrors(j) {
		meta = nil
	}
	p.store(j, meta, settled, reject)
}

func (p *pipeline) store(j *job, meta *resultstore.Meta, settled, reject bool) {
	var settle *transports.Delivery
	if !settled {
		settle = j.d
	}
	if meta == nil && settle == nil {
		return
	}
	if meta == nil {
		p.settle(settle, reject, false)
		return
	}
	r := resultJob{meta: meta, settle: settle, reject: reject}
	if j.direct && p.storeDirect(r) {
		return
	}
	p.results.put(r)
}

// execute runs a task whose time has come.
func (p *pipeline) execute(j *job) {
	w := p.w
	t := j.t
	if p.expired(j) {
		return
	}
	if p.w.revoked.has(t.ID) || p.revokedByStamp(j) {
		p.revokedTask(j, false, false)
		return
	}
	late := p.acksLate(j)
	if !late {
		p.settle(j.d, false, false)
	}
	ctx, cancel := context.WithCancelCause(p.workCtx)
	defer cancel(nil)
	w.track.start(j, cancel, !late)
	defer w.track.done(j)
	if p.observed() {
		p.emit(&TaskEvent{Type: EventTaskStarted, Request: j.req})
	}
	if p.trackStarted(j) && !p.ignoreResult(j) {
		m := p.newMeta(j, resultstore.Started)
		m.Extended = nil
		m.Result = map[string]any{"pid": int64(w.pid), "hostname": w.cfg.Hostname}
		p.results.put(resultJob{meta: m})
	}
	start := time.Now()
	res, hardLimit := p.runLimited(ctx, j)
	ret, err, stack := res.ret, res.err, res.stack
	if j.terminated.Load() {
		p.revokedTask(j, false, !late)
		return
	}
	if hardLimit > 0 {
		p.hardTimeout(j, hardLimit, late)
		return
	}
	runtime := time.Since(start).Seconds()
	if err != nil {
		err = p.autoretry(j, err)
	}

	var rej *RejectError
	var re *RetryError
	switch {
	case err == nil:
		children, ferr := p.successFollowUps(j, ret)
		if ferr != nil {
			p.fail(j, ferr, nil, late, runtime)
			return
		}
		if w.log.Enabled(p.workCtx, slog.LevelInfo) {
			w.log.Info(fmt.Sprintf("Task %s[%s] succeeded in %ss: %s", t.Name, t.ID, formatSeconds(runtime), protocolv2.PyRepr(ret)),
				"task_id", t.ID, "task_name", t.Name, "duration", runtime, "state", resultstore.Success)
		}
		m := p.newMeta(j, resultstore.Success)
		m.Result = ret
		m.Children = children
		p.finish(j, m, !late)
		p.chordPart(j, resultstore.Success, ret)
		if p.observed() {
			p.emit(&TaskEvent{Type: EventTaskSucceeded, Request: j.req, Result: ret, Runtime: time.Duration(runtime * float64(time.Second))})
		}
	case errors.Is(err, ErrIgnore):
		w.log.Info(fmt.Sprintf("Task %s[%s] ignored", t.Name, t.ID), "task_id", t.ID, "task_name", t.Name)
		if late {
			p.settle(j.d, false, false)
		}
	case errors.As(err, &rej):
		w.log.Info(fmt.Sprintf("Task %s[%s] %v", t.Name, t.ID, rej), "task_id", t.ID, "task_name", t.Name)
		if late {
			p.settle(j.d, true, rej.Requeue)
		}
	case errors.As(err, &re):
		p.retry(j, re, late, runtime)
	default:
		p.fail(j, err, stack, late, runtime)
	}
}

// fail stores FAILURE for err and settles the message as Celery's
// on_failure does.
func (p *pipeline) fail(j *job, err error, stack []byte, late bool, runtime float64) {
	t := j.t
	exc := pyException(err)
	tb := traceback(t.Name, exc, err, stack)
	p.w.log.Error(fmt.Sprintf("Task %s[%s] raised unexpected: %s", t.Name, t.ID, pyExcRepr(exc)),
		"task_id", t.ID, "task_name", t.Name, "duration", runtime, "state", resultstore.Failure, "traceback", tb)
	m := p.newMeta(j, resultstore.Failure)
	info := &resultstore.ExceptionInfo{Type: exc.Type, Module: exc.Module, Message: exc.Args}
	m.Result = info
	m.Traceback = tb
	p.finishError(j, m, !late, late && !p.acksOnFailureOrTimeout(j))
	p.failureFollowUps(j, info, tb)
	if p.observed() {
		p.emit(&TaskEvent{Type: EventTaskFailed, Request: j.req, Exception: pyExcRepr(exc), Traceback: tb,
			Runtime: time.Duration(runtime * float64(time.Second))})
	}
}

// call runs the handler, turning a panic into an error with its stack.
func (p *pipeline) call(ctx context.Context, j *job) (res callResult) {
	defer func() {
		if r := recover(); r != nil {
			res.stack = debug.Stack()
			if e, ok := r.(error); ok {
				res.err = fmt.Errorf("panic: %w", e)
			} else {
				res.err = fmt.Errorf("panic: %v", r)
			}
		}
	}()
	res.ret, res.err = j.reg.handler(ctx, j.req)
	return res
}

// traceback renders the text stored as the result's traceback.
func traceback(task string, exc *PyError, err error, stack []byte) string {
	s := "Traceback (most recent call last):\n  Go handler for " + strconv.Quote(task)
	if stack != nil {
		s += " panicked:\n" + string(stack)
	} else {
		s += " returned an error: " + err.Error() + "\n"
	}
	return s + exc.Type + ": " + pyArgsText(exc.Args) + "\n"
}

// pyArgsText renders exception args the way str(exc) does.
func pyArgsText(args []any) string {
	switch len(args) {
	case 0:
		return ""
	case 1:
		if s, ok := args[0].(string); ok {
			return s
		}
		return protocolv2.PyRepr(args[0])
	}
	return protocolv2.PyRepr(args)
}

// pyExcRepr renders repr(exc): ValueError('boom').
func pyExcRepr(e *PyError) string {
	s := protocolv2.PyRepr(e.Args)
	if len(s) >= 2 {
		s = s[1 : len(s)-1]
	}
	return e.Type + "(" + s + ")"
}

// formatSeconds prints a float as Python's str(float) does for runtimes.
func formatSeconds(s float64) string {
	f := strconv.FormatFloat(s, 'g', -1, 64)
	for _, c := range f {
		if c == '.' || c == 'e' {
			return f
		}
	}
	return f + ".0"
}
