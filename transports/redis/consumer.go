package redistransport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

// Consumer consumes a set of queues like one kombu Redis channel: a
// round-robin queue cycle, BRPOP key order "every queue at step 0, every
// queue at step 3, ...", and ack emulation in unacked/unacked_index.
// Fetch may be called concurrently with itself (FetchConcurrency); Ack,
// Reject and Restore may be called from any goroutine.
type Consumer struct {
	t      *Transport
	queues []string // round-robin cycle, most recently served last; guarded by fetchMu
	// queuesChanged is signalled by AddQueue, for a Fetch waiting while
	// no queue is consumed.
	queuesChanged chan struct{}
	// lazyHeaders: deliveries keep their headers as JSON text (see
	// LazyHeaders).
	lazyHeaders atomic.Bool

	fetchMu  sync.Mutex
	buffered []*Delivery // popped and recorded, not yet handed out
	inflight *brpopCall  // the outstanding BRPOP, if any
	// quiet: the last message came from a BRPOP that left every queue
	// empty, so the next fetch goes straight to BRPOP instead of first
	// running a pop script that would most likely find them empty again.
	quiet bool
	// brpopExists: BRPOP goes out pipelined with EXISTS, whose reply
	// sets quiet. Only with a client whose read timeout (which applies to
	// a whole pipeline) leaves BRPOP a second to spare; otherwise BRPOP
	// goes alone (go-redis extends its read timeout) and the next fetch
	// starts with the pop script.
	brpopExists bool
	// recordAfter is recordDelay (tests change it).
	recordAfter time.Duration

	closeOnce sync.Once
	closing   chan struct{}
	done      chan struct{} // closed when the sweep goroutine has exited
	closed    bool
	mu        sync.Mutex

	brpops  atomic.Int64   // BRPOP calls started (observability, tests)
	records sync.WaitGroup // BRPOPs started and not yet recorded
	// Records of BRPOP deliveries are written by one long-lived goroutine
	// (a fresh goroutine per record grew its stack through the Redis
	// client's call path every time). Neither waking it nor arming a
	// timer happens as the message comes in: either would wake an idle
	// thread of the Go runtime on the task's way to its result.
	recordQ chan *popped
	loops   sync.WaitGroup
	// pending holds BRPOP messages not yet handed to the recorder: the
	// hand-out wakes no goroutine. The next Fetch passes them on (most
	// have been acknowledged by then and need nothing), as does anything
	// that waits for a record, and the recorder takes what is left every
	// recordSweep.
	pendMu  sync.Mutex
	pending []*popped

	// Acks wait here for the next pop script call to carry them; the ack
	// flusher sends what no pop took within ackLinger.
	ackMu     sync.Mutex
	acks      []*pendingAck
	ackDirect bool          // the flusher has stopped: Ack sends at once
	ackKick   chan struct{} // wakes the flusher
	ackDone   chan struct{} // closed when the flusher has exited
	linger    time.Duration // ackLinger (tests lengthen it)
	carried   atomic.Int64  // tags acknowledged by a pop (observability, tests)

	// Pop tickets (see popScript): one per pop in flight, reused.
	ticketMu   sync.Mutex
	tickets    []*popTicket // free; those with a lost pop to repeat first
	ticketKeys []string     // every ticket's key, deleted on Close
	ticketBase string       // unique per consumer
	// popArgs holds the pop script's unchanging arguments, boxed once
	// (see newPopArgs).
	popArgs *popArgs
	popSeq  atomic.Uint64
	repeats atomic.Int64 // pops sent again after an error (observability, tests)
}

// popTicket is the Redis key where the pop script leaves the id of the
// pop that last used it and the messages that pop recorded. After a pop
// fails, the ticket keeps that pop's id and arguments: the next pop that
// takes the ticket sends the same pop again, and gets the messages the
// lost run recorded, if it ran.
type popTicket struct {
	key    string
	keyArg any      // key, boxed once for the pop's arguments
	id     string   // the failed pop's id, "" when none failed
	queues []string // the failed pop's queue snapshot
	max    int      // and its max
}

// pendingAck is tags waiting to be sent: one Ack call, or AckAsync calls
// (done nil: nobody waits, and a failed send puts them back for a retry).
type pendingAck struct {
	tags []string
	done chan error // buffered: receives the outcome once
	// one backs tags for a single tag (the worker acks early one message
	// at a time): one allocation per ack instead of two.
	one [1]string
}

// ackLinger is how long an acknowledgement waits for a pop to carry it
// before it is sent on its own. Under load a pop follows within a round
// trip; an idle worker pays one separate ack a little later.
const ackLinger = time.Millisecond

// maxCarriedAcks bounds the tags one pop script call acknowledges (Lua's
// unpack has a stack limit).
const maxCarriedAcks = 1000

// Delivery is transports.Delivery; the alias keeps signatures short.
type Delivery = transports.Delivery

var _ transports.Consumer = (*Consumer)(nil)

// popped is one message taken off a list by this consumer.
type popped struct {
	queue    string
	key      string    // unprefixed list key it came from
	at       time.Time // when BRPOP returned it (the record's time)
	text     string    // the payload as the Redis client read it
	recorded bool
	// rec is set for a BRPOP result: it is handed out before its record
	// in unacked finishes (see recordState).
	rec *recordState
	// A BRPOP result is decoded before it is handed out: msg and msgErr
	// are the decoded envelope (for delivery), tag, exchange and
	// routingKey what its record needs (read before the hand-out, as the
	// pipeline may change msg).
	msg                       *kombu.Message
	msgErr                    error
	tag, exchange, routingKey string
}

// recordState is the unacked record of a message a BRPOP handed out
// before its record was written. The record is written recordDelay after
// the BRPOP returned, unless the message is acknowledged first: then
// neither the record nor the ack is sent. An idle worker acknowledges
// (acks early, Celery's default) as the task starts, well within the
// delay, so its message costs Redis the BRPOP alone, and the result's
// store is not queued behind a record and an ack (kombu: BRPOP, record,
// ack). A message the worker keeps (ETA, rate limit, acks late, no free
// executor) is recorded once the delay is over and the next Fetch has
// started, or at the recorder's next sweep (recordSweep) if no Fetch
// follows. The window in which only this process holds the message is
// the BRPOP reply to the task's start or to the record's reply: kombu's
// is the BRPOP reply to its record's reply.
//
// What must not run before the record lands is a settlement of a
// recorded message, so Ack, Reject, Restore and give-back have the
// record written at once and wait for it, and AckAsync leaves its ack to
// the recorder once writing has begun. (Touch need not wait: its ZADD XX
// skips a missing entry, and the record writes a fresh score.)
type recordState struct {
	done     chan struct{} // closed when the record attempt is over
	mu       sync.Mutex
	now      chan struct{} // closed to have the record written at once
	hurried  bool          // now is closed
	started  bool          // the recorder is writing it
	finished bool
	recorded bool   // the message is in unacked
	ackTag   string // AckAsync came while writing: ack once recorded
}

func newRecordState() *recordState {
	return &recordState{done: make(chan struct{}), now: make(chan struct{})}
}

// deferAck settles an ack of tag against the record: an unwritten record
// is dropped with the ack (nothing to send), one being written takes the
// ack over. It reports whether the caller has nothing left to send.
func (r *recordState) deferAck(tag string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.finished:
		return false
	case !r.started:
		r.finished = true
		close(r.done)
	default:
		r.ackTag = tag
	}
	return true
}

// hurry has the record written without waiting for the delay.
func (r *recordState) hurry() {
	r.mu.Lock()
	if !r.hurried {
		r.hurried = true
		close(r.now)
	}
	r.mu.Unlock()
}

// begin claims the record for writing; false means an ack dropped it.
func (r *recordState) begin() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return false
	}
	r.started = true
	return true
}

// over reports whether the record attempt is over (written or dropped).
func (r *recordState) over() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.finished
}

func (r *recordState) isRecorded() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recorded
}

// waitRecorded has every delivery's record written now and waits until
// each attempt is over.
func (c *Consumer) waitRecorded(ctx context.Context, ds ...*Delivery) error {
	c.passPending(true)
	for _, d := range ds {
		if d == nil {
			continue
		}
		if r, ok := d.Token.(*recordState); ok {
			r.hurry()
			select {
			case <-r.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

type brpopResult struct {
	p   *popped
	err error
	// drained: after the BRPOP, every queue it watched was empty (EXISTS
	// in the same pipeline), so the producers are not ahead of this
	// worker.
	drained bool
}

// recordDelay is how long a message BRPOP delivered stays unrecorded,
// waiting for its ack to make the record unnecessary (see recordState).
// recordSweep bounds how long one stays pending when no Fetch follows
// (every token held by messages waiting for busy executors).
const (
	recordDelay = time.Millisecond
	recordSweep = 50 * time.Millisecond
)

// brpopCall is a BRPOP running in the background: res is set before done
// is closed; whoever next holds fetchMu takes it.
type brpopCall struct {
	keys []string
	done chan struct{}
	res  brpopResult
}

// Consume starts consuming queues (in the order given, then round robin).
// It runs the visibility sweep now and every Options.RestoreInterval
// while the consumer is open. prefetch is enforced by the caller through
// Fetch's max argument.
func (t *Transport) Consume(ctx context.Context, queues []string, prefetch int) (transports.Consumer, error) {
	return t.consume(queues)
}

// ConsumeQueues is Consume returning the concrete type.
func (t *Transport) ConsumeQueues(queues []string) (*Consumer, error) { return t.consume(queues) }

func (t *Transport) consume(queues []string) (*Consumer, error) {
	if len(queues) == 0 {
		return nil, errors.New("redistransport: consume: no queues")
	}
	seen := map[string]bool{}
	var qs []string
	for _, q := range queues {
		if !seen[q] {
			seen[q] = true
			qs = append(qs, q)
		}
	}
	c := &Consumer{t: t, queues: qs, queuesChanged: make(chan struct{}, 1),
		closing: make(chan struct{}), done: make(chan struct{}),
		ackKick: make(chan struct{}, 1), ackDone: make(chan struct{}), linger: ackLinger,
		recordAfter: recordDelay,
		recordQ:     make(chan *popped, 16),
		ticketBase:  t.ks.key(ticketKeyPrefix + newToken() + ".")}
	c.popArgs = newPopArgs(t, qs, c.ticketTTL())
	if rc, ok := t.client.(*redis.Client); ok {
		rt := rc.Options().ReadTimeout
		c.brpopExists = rt < 0 || rt > t.opts.PollTimeout+time.Second
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, transports.ErrClosed
	}
	t.consumers[c] = struct{}{}
	t.mu.Unlock()
	go c.sweepLoop()
	go c.ackLoop()
	c.loops.Add(1)
	go c.recordLoop()
	return c, nil
}

func (c *Consumer) sweepLoop() {
	defer close(c.done)
	interval := c.t.opts.RestoreInterval
	sweep := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		go func() {
			select {
			case <-c.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		if _, err := c.t.RestoreVisible(ctx); err != nil && ctx.Err() == nil {
			c.t.log.Warn("visibility sweep failed", "error", err)
		}
	}
	sweep()
	if interval < 0 {
		<-c.closing
		return
	}
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-tk.C:
			sweep()
		}
	}
}

func (c *Consumer) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// keys lists the prefixed list keys in kombu's BRPOP order for the
// current rotation.
func (c *Consumer) keys(extra int) []string {
	ks := c.t.ks
	keys := make([]string, 0, len(ks.steps)*len(c.queues)+extra)
	for _, suffix := range ks.stepSuffix {
		for _, q := range c.queues {
			keys = append(keys, ks.prefix+q+suffix)
		}
	}
	return keys
}

// rotate moves queue to the end of the cycle (round_robin_cycle.rotate).
func (c *Consumer) rotate(queue string) {
	for i, q := range c.queues {
		if q == queue {
			copy(c.queues[i:], c.queues[i+1:])
			c.queues[len(c.queues)-1] = queue
			return
		}
	}
}

// ceilSeconds is t's Unix time in seconds, rounded up.
func ceilSeconds(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// Fetch returns 1..max deliveries, each recorded in unacked (a message
// from the blocking BRPOP fallback may still have its record on the way;
// settling it waits for the record). It
// first pops without blocking (Lua, atomic with the record); when every
// queue is empty it blocks in BRPOP (PollTimeout at a time) until a
// message arrives or ctx is done. A message popped by a BRPOP that
// outlives ctx is kept for the next Fetch (or given back on Close), never
// dropped. Errors are connection errors the caller can retry on.
//
// Fetch may be called concurrently (see FetchConcurrency): non-blocking
// pops run in parallel, each on its own connection, so a caller can keep
// the next pop in flight while it works on the previous batch; one BRPOP
// at a time serves the callers that found every queue empty. Concurrent
// pops share the queue cycle: each starts from the rotation current when
// it was issued.
func (c *Consumer) Fetch(ctx context.Context, max int) ([]*Delivery, error) {
	return c.FetchNotify(ctx, max, nil)
}

// FetchNotify is Fetch that calls idle (once, if at all, before it
// returns) when every queue was empty and it starts waiting for a
// message: a caller ordering concurrent fetches by issue time then knows
// that this one popped nothing yet, so later fetches need not wait for it.
func (c *Consumer) FetchNotify(ctx context.Context, max int, idle func()) ([]*Delivery, error) {
	if max < 1 {
		max = 1
	}
	c.passPending(false)
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	for {
		if c.isClosed() {
			return nil, transports.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(c.buffered) > 0 {
			n := min(max, len(c.buffered))
			out := c.buffered[:n:n]
			c.buffered = c.buffered[n:]
			return out, nil
		}
		if call := c.inflight; call != nil {
			select {
			case <-call.done:
				c.inflight = nil
				r := call.res
				if r.err != nil {
					c.quiet = false
					return nil, r.err
				}
				if r.p == nil {
					continue // BRPOP timed out; go round again
				}
				c.quiet = r.drained
				if !slices.Contains(c.queues, r.p.queue) {
					// CancelQueue ran while this BRPOP waited: give the
					// message back, as kombu rejects (requeues) a message
					// for a queue it no longer consumes.
					if d := c.delivery(ctx, r.p); d != nil {
						c.fetchMu.Unlock()
						err := c.Restore(context.WithoutCancel(ctx), d)
						c.fetchMu.Lock()
						if err != nil {
							return nil, err
						}
					}
					continue
				}
				c.rotate(r.p.queue)
				// Hand it out at once: the next Fetch pops the rest of a
				// burst, and an idle queue's single message is not
				// delayed by another round trip.
				if d := c.delivery(ctx, r.p); d != nil {
					c.buffered = append(c.buffered, d)
				}
				continue
			default:
			}
			// Wait without the lock: concurrent pops must be able to
			// finish (and record their rotation) meanwhile.
			if err := c.waitUnlocked(ctx, &idle, call.done); err != nil {
				return nil, err
			}
			continue
		}
		if len(c.queues) == 0 {
			// Every queue was cancelled: wait for one to be added.
			if err := c.waitUnlocked(ctx, &idle, c.queuesChanged); err != nil {
				return nil, err
			}
			continue
		}
		if c.quiet {
			// One message at a time: wait for the next one right away.
			// The pop script resumes once a BRPOP finds a message
			// without waiting (a backlog is building).
			c.waitBRPOP(&idle)
			continue
		}
		queues := append([]string(nil), c.queues...)
		c.fetchMu.Unlock()
		ds, served, err := c.popBatch(ctx, queues, max)
		c.fetchMu.Lock()
		for _, q := range served {
			c.rotate(q)
		}
		if len(ds) > max {
			// A repeated pop returns what its first run took, which may
			// be more than this caller asked for.
			c.buffered = append(c.buffered, ds[max:]...)
			ds = ds[:max:max]
		}
		if err != nil || len(ds) > 0 {
			return ds, err
		}
		if c.inflight == nil {
			c.waitBRPOP(&idle)
		}
	}
}

// waitUnlocked releases fetchMu, calls *idle (once, then clears it) and
// waits for ready, ctx or Close; it returns with fetchMu held, and the
// error that ended the wait early.
func (c *Consumer) waitUnlocked(ctx context.Context, idle *func(), ready <-chan struct{}) error {
	c.fetchMu.Unlock()
	defer c.fetchMu.Lock()
	if *idle != nil {
		(*idle)()
		*idle = nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closing:
		return transports.ErrClosed
	case <-ready:
		return nil
	}
}

// AddQueue starts consuming queue too (celery control add_consumer); a
// queue already consumed is left as it is. A BRPOP already waiting
// includes it from its next round (within PollTimeout).
func (c *Consumer) AddQueue(queue string) error {
	if queue == "" {
		return errors.New("redistransport: add queue: empty name")
	}
	c.fetchMu.Lock()
	if !slices.Contains(c.queues, queue) {
		c.queues = append(c.queues, queue)
	}
	c.fetchMu.Unlock()
	select {
	case c.queuesChanged <- struct{}{}:
	default:
	}
	return nil
}

// CancelQueue stops consuming queue (celery control cancel_consumer).
// Messages already fetched from it are still handed out; a BRPOP already
// waiting may still bring one more. With no queue left, Fetch waits for
// AddQueue.
func (c *Consumer) CancelQueue(queue string) error {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	c.queues = slices.DeleteFunc(c.queues, func(q string) bool { return q == queue })
	return nil
}

// Queues returns the queues consumed now, in the order of the cycle.
func (c *Consumer) Queues() []string {
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	return slices.Clone(c.queues)
}

// FetchConcurrency reports how many Fetch calls may usefully run at once:
// two, so that one pop is in flight while the caller hands out the
// previous batch.
func (c *Consumer) FetchConcurrency() int { return 2 }

// popBatch runs popScript for up to max messages over queues (a snapshot
// of the cycle). It returns the deliveries and, in pop order, the queue
// each popped message came from (for the rotation). When it takes a
// ticket whose last pop failed, it sends that pop again instead (its
// queues and max), which returns the messages the lost run recorded.
func (c *Consumer) popBatch(ctx context.Context, queues []string, max int) ([]*Delivery, []string, error) {
	return c.popWith(ctx, c.takeTicket(false), queues, max)
}

// popWith is popBatch with the ticket taken.
func (c *Consumer) popWith(ctx context.Context, tk *popTicket, queues []string, max int) ([]*Delivery, []string, error) {
	t := c.t
	ks := t.ks
	sent := &sendCount{}
	if tk.id != "" {
		queues, max = tk.queues, tk.max
		sent.n.Store(1)
		c.repeats.Add(1)
	} else {
		tk.id = strconv.FormatUint(c.popSeq.Add(1), 36)
	}
	pa := c.popArgs
	nkeys := 3 + len(ks.stepSuffix)*len(queues)
	acks, ntags := c.takeAcks()
	args := make([]any, 0, 3+nkeys+6+len(queues)+ntags)
	args = append(args, "evalsha", pa.sha, nkeys, pa.unacked, pa.index, tk.keyArg)
	for step := range ks.stepSuffix {
		for _, q := range queues {
			args = append(args, pa.queue(q).steps[step])
		}
	}
	args = append(args, max, pa.now(), len(queues))
	for _, q := range queues {
		args = append(args, pa.queue(q).name)
	}
	args = append(args, tk.id, pa.ttl, sent)
	for _, a := range acks {
		for _, tag := range a.tags {
			args = append(args, tag)
		}
	}
	res, err := c.runPop(ctx, args, nkeys).Slice()
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	c.settleAcks(acks, err)
	if err != nil {
		// Whether it ran is unknown: keep the pop for a repeat.
		tk.queues, tk.max = queues, max
		c.putTicket(tk)
		return nil, nil, fmt.Errorf("redistransport: fetch: %w", err)
	}
	tk.id, tk.queues = "", nil
	c.putTicket(tk)
	c.carried.Add(int64(ntags))
	ds := make([]*Delivery, 0, len(res)/3)
	served := make([]string, 0, len(res)/3)
	for i := 0; i+2 < len(res); i += 3 {
		qi, _ := res[i].(int64)
		raw, _ := res[i+1].(string)
		rec, _ := res[i+2].(int64)
		if qi < 1 || int(qi) > len(queues) {
			continue
		}
		q := queues[qi-1]
		served = append(served, q)
		if rec == 2 {
			// A repeated pop: raw is the message's unacked entry.
			env, _, _, err := parseUnackedValue([]byte(raw))
			if err != nil {
				t.log.Error("could not read back a message from a pop whose reply was lost; it waits for the visibility timeout",
					"queue", q, "error", err)
				continue
			}
			raw, rec = string(env), 1
		}
		// Work out which key it came from only when needed (give-back).
		p := &popped{queue: q, text: raw, recorded: rec == 1}
		if d := c.delivery(ctx, p); d != nil {
			ds = append(ds, d)
		}
	}
	return ds, served, nil
}

// sendCount is the pop script's "may be a repeat" argument: the Redis
// client writes a command's arguments anew each time it sends it, so the
// argument reads "0" the first time and "1" when the client sends the
// pop again after a broken connection (or as EVAL after NOSCRIPT). The
// script reads its ticket only then, which saves Redis a GET per pop.
type sendCount struct{ n atomic.Int32 }

var flagFirst, flagRepeat = []byte("0"), []byte("1")

// MarshalBinary implements encoding.BinaryMarshaler for the Redis client.
func (s *sendCount) MarshalBinary() ([]byte, error) {
	if s.n.Add(1) == 1 {
		return flagFirst, nil
	}
	return flagRepeat, nil
}

// popArgs are the pop script's arguments that do not change from pop to
// pop, each boxed into an interface once: the Redis client takes a
// command's arguments as []any, and boxing a string allocates. The
// consumer's queue set is fixed, so its entries are never added to.
type popArgs struct {
	ks             *keyspace
	sha            any
	unacked, index any
	ttl            any
	queues         map[string]*queueArgs
	last           atomic.Pointer[nowBox]
}

// queueArgs are one queue's arguments: its name and its list key at each
// priority step.
type queueArgs struct {
	name  any
	steps []any
}

// nowBox is popArgs.now's value for one second, boxed.
type nowBox struct {
	sec int64
	arg any
}

func newPopArgs(t *Transport, queues []string, ttl int64) *popArgs {
	ks := t.ks
	pa := &popArgs{ks: ks, sha: popScript.Hash(), unacked: ks.key(t.opts.UnackedKey),
		index: ks.key(t.opts.UnackedIndexKey), ttl: ttl, queues: make(map[string]*queueArgs, len(queues))}
	for _, q := range queues {
		pa.queues[q] = pa.newQueue(q)
	}
	return pa
}

func (pa *popArgs) newQueue(q string) *queueArgs {
	qa := &queueArgs{name: q}
	for _, suffix := range pa.ks.stepSuffix {
		qa.steps = append(qa.steps, pa.ks.prefix+q+suffix)
	}
	return qa
}

// queue returns q's arguments (boxed anew for a queue not in the set).
func (pa *popArgs) queue(q string) *queueArgs {
	if qa, ok := pa.queues[q]; ok {
		return qa
	}
	return pa.newQueue(q)
}

// now is the delivery time recorded in unacked_index: the current Unix
// time rounded up to a whole second. kombu records time() with its
// fraction; kombu's sweep only compares the score with time() minus the
// visibility timeout, so a whole second reads the same to it, restores a
// message at most a second later, never earlier, and costs Redis much less
// (a whole-number score is stored and compared as an integer instead of
// being formatted with %.17g and parsed back on every insert).
// It is boxed once per second.
func (pa *popArgs) now() any {
	sec := ceilSeconds(time.Now())
	if b := pa.last.Load(); b != nil && b.sec == sec {
		return b.arg
	}
	b := &nowBox{sec: sec, arg: strconv.FormatInt(sec, 10)}
	pa.last.Store(b)
	return b.arg
}

// runPop sends the pop script as EVALSHA with args (laid out as the
// command: "evalsha", the hash, nkeys, the keys, then ARGV) and, when
// Redis has lost the script (NOSCRIPT), as EVAL with its source, as the
// client's Script.Run does. The "may be a repeat" argument then reads
// "1", so the second send checks the ticket, which holds no match (the
// first send ran nothing).
func (c *Consumer) runPop(ctx context.Context, args []any, nkeys int) *redis.Cmd {
	cmd := redis.NewCmd(ctx, args...)
	_ = c.t.client.Process(ctx, cmd)
	if !redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		return cmd
	}
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i], _ = args[3+i].(string)
	}
	return popScript.Eval(ctx, c.t.client, keys, args[3+nkeys:]...)
}

// ticketKeyPrefix starts the pop tickets' key names (under
// global_keyprefix); kombu uses no key of this name.
const ticketKeyPrefix = "_celerity.pop."

// takeTicket returns a free ticket: one with a failed pop to repeat
// first, else any, else a new one. With lostOnly it returns only a ticket
// with a failed pop, or nil.
func (c *Consumer) takeTicket(lostOnly bool) *popTicket {
	c.ticketMu.Lock()
	defer c.ticketMu.Unlock()
	for i, tk := range c.tickets {
		if tk.id != "" {
			c.tickets = append(c.tickets[:i], c.tickets[i+1:]...)
			return tk
		}
	}
	if lostOnly {
		return nil
	}
	if n := len(c.tickets); n > 0 {
		tk := c.tickets[n-1]
		c.tickets = c.tickets[:n-1]
		return tk
	}
	tk := &popTicket{key: c.ticketBase + strconv.Itoa(len(c.ticketKeys))}
	tk.keyArg = tk.key
	c.ticketKeys = append(c.ticketKeys, tk.key)
	return tk
}

func (c *Consumer) putTicket(tk *popTicket) {
	c.ticketMu.Lock()
	c.tickets = append(c.tickets, tk)
	c.ticketMu.Unlock()
}

// ticketTTL is how long a ticket is kept, in seconds: the visibility
// timeout, after which the sweep restores what a lost pop recorded (and a
// repeat then finds those entries gone).
func (c *Consumer) ticketTTL() int64 {
	return max(int64((c.t.opts.VisibilityTimeout+time.Second-1)/time.Second), 1)
}

// repeatLostPops runs, on Close, the pops that failed and were not sent
// again, and returns what they recorded, to be given back.
func (c *Consumer) repeatLostPops(ctx context.Context) []*Delivery {
	var out []*Delivery
	for {
		tk := c.takeTicket(true)
		if tk == nil {
			return out
		}
		ds, _, err := c.popWith(ctx, tk, nil, 0)
		if err != nil {
			c.t.log.Warn("could not repeat a pop whose reply was lost; its messages wait for the visibility timeout", "error", err)
			return out
		}
		out = append(out, ds...)
	}
}

// waitBRPOP runs one BRPOP in the calling Fetch's goroutine, which then
// hands the message out itself: a message that comes to an idle worker
// wakes no other goroutine on its way to the task. Meanwhile the call is
// c.inflight, so concurrent fetches wait for it and Close takes its
// result; *idle is called (and cleared) before it blocks. Called with
// fetchMu held and no BRPOP in flight (none starts once the consumer is
// closing); it returns with fetchMu held. A Fetch whose context ends
// returns once the BRPOP does (within PollTimeout).
func (c *Consumer) waitBRPOP(idle *func()) {
	if c.isClosed() {
		return
	}
	call := &brpopCall{keys: c.keys(0), done: make(chan struct{})}
	c.inflight = call
	c.brpops.Add(1)
	c.records.Add(1)
	c.fetchMu.Unlock()
	if *idle != nil {
		(*idle)()
		*idle = nil
	}
	c.brpop(call)
	c.fetchMu.Lock()
}

// brpop runs call's BRPOP, decodes the message, sets call.res and closes
// call.done, then queues the message for its record.
func (c *Consumer) brpop(call *brpopCall) {
	t := c.t
	// EXISTS runs once BRPOP has returned (a client's pipelined commands
	// wait for its blocked one): it tells whether messages are left,
	// without another round trip and whatever the timing.
	ctx := context.Background()
	var kv []string
	var err error
	drained := false
	if c.brpopExists {
		pipe := t.client.Pipeline()
		pop := pipe.BRPop(ctx, t.opts.PollTimeout, call.keys...)
		left := pipe.Exists(ctx, call.keys...)
		_, _ = pipe.Exec(ctx) // the commands carry their errors
		kv, err = pop.Result()
		n, lerr := left.Result()
		drained = lerr == nil && n == 0
	} else {
		kv, err = t.client.BRPop(ctx, t.opts.PollTimeout, call.keys...).Result()
	}
	if errors.Is(err, redis.Nil) {
		close(call.done)
		c.records.Done()
		return
	}
	if err != nil {
		call.res = brpopResult{err: fmt.Errorf("redistransport: brpop: %w", err)}
		close(call.done)
		c.records.Done()
		return
	}
	key := kv[0][len(t.ks.prefix):]
	queue := key
	for _, q := range c.queuesFromKeys(call.keys) {
		if q.key == kv[0] {
			queue = q.queue
			break
		}
	}
	p := &popped{queue: queue, key: key, at: time.Now(), text: kv[1], rec: newRecordState()}
	p.msg, p.msgErr = c.decode(p.text)
	if p.msgErr == nil {
		di := p.msg.Properties.DeliveryInfo
		p.tag, p.exchange, p.routingKey = p.msg.Properties.DeliveryTag, di.Exchange, orDefault(di.RoutingKey, queue)
	}
	call.res = brpopResult{p: p, drained: drained}
	c.pendMu.Lock()
	c.pending = append(c.pending, p)
	c.pendMu.Unlock()
	close(call.done) // hand it out now; the record may follow
}

// takePending empties pending. Messages whose record is over already
// (acknowledged before it was written) are done with here; the rest are
// returned.
func (c *Consumer) takePending() []*popped {
	c.pendMu.Lock()
	ps := c.pending
	c.pending = nil
	c.pendMu.Unlock()
	live := ps[:0]
	for _, p := range ps {
		if p.rec.over() {
			c.records.Done()
		} else {
			live = append(live, p)
		}
	}
	return live
}

// passPending hands pending messages to the recorder; with block false,
// those that do not fit in its queue stay pending.
func (c *Consumer) passPending(block bool) {
	ps := c.takePending()
	for i, p := range ps {
		if block {
			c.recordQ <- p
			continue
		}
		select {
		case c.recordQ <- p:
		default:
			c.pendMu.Lock()
			c.pending = append(ps[i:len(ps):len(ps)], c.pending...)
			c.pendMu.Unlock()
			return
		}
	}
}

// recordLoop records the BRPOP messages passed to it, and every
// recordSweep those still pending (see recordOne).
func (c *Consumer) recordLoop() {
	defer c.loops.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	sweep := time.NewTicker(recordSweep)
	defer sweep.Stop()
	for {
		select {
		case p, ok := <-c.recordQ:
			if !ok {
				return
			}
			c.recordOne(p, timer)
		case <-sweep.C:
			for _, p := range c.takePending() {
				c.recordOne(p, timer)
			}
		}
	}
}

// recordOne writes p's record once recordAfter has passed since BRPOP
// returned it, unless it is acknowledged first (or sooner when something
// waits for it, or the consumer closes).
func (c *Consumer) recordOne(p *popped, timer *time.Timer) {
	// Most often the task has started (and dropped the record) by the
	// time this runs: then no timer is armed.
	if d := time.Until(p.at.Add(c.recordAfter)); d > 0 && !p.rec.over() {
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-p.rec.now:
			timer.Stop()
		case <-c.closing:
			timer.Stop()
		}
	}
	c.recordBRPOPed(p)
	c.records.Done()
}

// recordBRPOPed records a BRPOP result in unacked (from Go when cjson
// cannot read the envelope), then settles what waited for the record. A
// message acknowledged before is not recorded.
func (c *Consumer) recordBRPOPed(p *popped) {
	r := p.rec
	if !r.begin() {
		return
	}
	ok := c.recordPopped(p)
	r.mu.Lock()
	r.finished, r.recorded = true, ok
	tag := r.ackTag
	r.mu.Unlock()
	close(r.done)
	if tag != "" && ok {
		c.AckAsync(&Delivery{Tag: tag})
	}
}

// recordFromGo writes the unacked entry for an envelope Go can read and
// cjson cannot.
func (c *Consumer) recordFromGo(ctx context.Context, p *popped, m *kombu.Message) error {
	err := c.writeRecord(ctx, m.Properties.DeliveryTag, m.Properties.DeliveryInfo.Exchange,
		orDefault(m.Properties.DeliveryInfo.RoutingKey, p.queue), p.raw(), time.Now())
	if err != nil {
		c.t.log.Error("could not record delivered message in unacked", "queue", p.queue, "error", err)
	}
	return err
}

// writeRecord writes kombu's unacked entry for one message, as kombu's
// QoS.append does: ZADD unacked_index (at, in whole seconds rounded up)
// and HSET unacked in one MULTI.
func (c *Consumer) writeRecord(ctx context.Context, tag, exchange, routingKey string, raw []byte, at time.Time) error {
	t := c.t
	pipe := t.client.TxPipeline()
	pipe.ZAdd(ctx, t.ks.key(t.opts.UnackedIndexKey), redis.Z{Score: float64(ceilSeconds(at)), Member: tag})
	pipe.HSet(ctx, t.ks.key(t.opts.UnackedKey), tag, unackedValue(nil, raw, exchange, routingKey))
	_, err := pipe.Exec(ctx)
	return err
}

type keyQueue struct{ key, queue string }

// queuesFromKeys maps each BRPOP key back to its queue.
func (c *Consumer) queuesFromKeys(keys []string) []keyQueue {
	ks := c.t.ks
	n := len(keys) / len(ks.stepSuffix)
	out := make([]keyQueue, len(keys))
	for i, k := range keys {
		suffix := ks.stepSuffix[i/n]
		out[i] = keyQueue{k, k[len(ks.prefix) : len(k)-len(suffix)]}
	}
	return out
}

// recordPopped records a BRPOP result in unacked, retrying while Redis is
// unreachable (the message exists only in this process meanwhile). An
// envelope Go decoded is recorded from Go with a MULTI, as kombu records
// it (Redis does a fraction of the record script's work: no Lua string
// is built from the payload); anything else goes through the record
// script, which records what cjson can read.
func (c *Consumer) recordPopped(p *popped) bool {
	t := c.t
	keys := []string{t.ks.key(t.opts.UnackedKey), t.ks.key(t.opts.UnackedIndexKey)}
	backoff := 50 * time.Millisecond
	for attempt := 0; attempt < 60; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var recorded bool
		var err error
		if p.tag != "" {
			err = c.writeRecord(ctx, p.tag, p.exchange, p.routingKey, p.raw(), p.at)
			recorded = err == nil
		} else {
			var n int
			n, err = recordScript.Run(ctx, t.client, keys, p.text, p.queue, strconv.FormatInt(ceilSeconds(p.at), 10)).Int()
			recorded = n == 1
		}
		cancel()
		if err == nil {
			return recorded
		}
		if t.isClosed() {
			t.log.Error("could not record delivered message in unacked; transport closed", "queue", p.queue, "error", err)
			return false
		}
		if attempt == 0 || attempt%20 == 0 {
			t.log.Error("could not record delivered message in unacked; retrying", "queue", p.queue, "error", err)
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 2*time.Second)
	}
	return false
}

// replyBytes views a payload the Redis client read for us as bytes
// without copying it (a kilobyte per task). The client allocated the
// string for this reply alone and nothing else holds it, and no one
// writes to a delivery's raw bytes: the decoder and the scripts only read
// them, and the decoded body is a copy. The envelope is decoded from the
// string itself (kombu.DecodeEnvelopeString): its header and property
// strings point into the payload instead of being copied.
func replyBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// raw is the payload's bytes, without a copy (replyBytes).
func (p *popped) raw() []byte { return replyBytes(p.text) }

// LazyHeaders makes the consumer leave the headers of the messages it
// delivers as JSON text (kombu.DecodeEnvelopeStringLazy: Headers nil,
// HeadersJSON set), for a reader that takes them that way; the worker
// reads them straight into its task (protocolv2.DecodeKnown). Messages
// are checked as thoroughly either way.
func (c *Consumer) LazyHeaders() { c.lazyHeaders.Store(true) }

// decode decodes a payload's envelope, its headers as LazyHeaders says.
func (c *Consumer) decode(text string) (*kombu.Message, error) {
	if c.lazyHeaders.Load() {
		return kombu.DecodeEnvelopeStringLazy(text)
	}
	return kombu.DecodeEnvelopeString(text)
}

// redeliveredHeader reports the "redelivered" header kombu's restore
// adds, from either form of the headers. In the text form it is looked
// for only where the key appears as kombu writes it (no escapes), which
// spares the walk for the messages that lack it.
func redeliveredHeader(m *kombu.Message) bool {
	if m.Headers != nil || m.HeadersJSON == "" {
		v, _ := m.Headers["redelivered"].(bool)
		return v
	}
	if !strings.Contains(m.HeadersJSON, `"redelivered"`) {
		return false
	}
	found := false
	_ = m.RangeHeaders(func(k string, v *kombu.HeaderValue) error {
		if k == "redelivered" {
			val, err := v.Value()
			b, _ := val.(bool)
			found = b // the last one counts, as in the map
			return err
		}
		return nil
	})
	return found
}

// delivery decodes a popped message. An envelope that cannot be decoded
// (or carries no delivery tag) is removed and logged: no kombu consumer
// can process it either.
func (c *Consumer) delivery(ctx context.Context, p *popped) *Delivery {
	m, err := p.msg, p.msgErr
	if m == nil && err == nil {
		m, err = c.decode(p.text)
	}
	if err == nil && m.Properties.DeliveryTag == "" {
		err = errors.New("no properties.delivery_tag")
	}
	if err != nil {
		c.t.log.Error("dropping undecodable message", "queue", p.queue, "error", err, "payload", truncate(p.raw(), 512))
		if m != nil && m.Properties.DeliveryTag != "" {
			recorded := p.recorded
			if p.rec != nil {
				p.rec.hurry()
				c.passPending(true)
				<-p.rec.done
				recorded = p.rec.isRecorded()
			}
			if recorded {
				_ = c.ackTags(ctx, []string{m.Properties.DeliveryTag})
			}
		}
		return nil
	}
	redelivered := m.Properties.DeliveryInfo.Redelivered || redeliveredHeader(m)
	if p.rec == nil && !p.recorded {
		// cjson could not read it but Go can: record from Go.
		_ = c.recordFromGo(ctx, p, m)
	}
	d := &Delivery{
		Message:     m,
		Raw:         p.raw(),
		Queue:       p.queue,
		Redelivered: redelivered,
		Tag:         m.Properties.DeliveryTag,
	}
	if p.rec != nil {
		d.Token = p.rec
	}
	return d
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// Ack removes the deliveries from unacked_index and unacked (kombu: ZREM
// + HDEL per tag). It returns once they are removed: by the next pop
// script call, which carries pending acks in the same atomic step, or
// after ackLinger in one MULTI/EXEC round trip of their own.
func (c *Consumer) Ack(ctx context.Context, ds ...*Delivery) error {
	tags := make([]string, 0, len(ds))
	for _, d := range ds {
		if d != nil && d.Tag != "" {
			tags = append(tags, d.Tag)
		}
	}
	if len(tags) == 0 {
		return nil
	}
	if err := c.waitRecorded(ctx, ds...); err != nil {
		return err
	}
	a := &pendingAck{tags: tags, done: make(chan error, 1)}
	if !c.enqueueAck(a) {
		return c.ackTags(ctx, tags)
	}
	select {
	case err := <-a.done:
		return err
	case <-ctx.Done():
		// Still sent later; acknowledging twice is harmless.
		return ctx.Err()
	}
}

// Keep says the worker holds the deliveries unacknowledged for a while
// (acks late, ETA, rate limit): a BRPOP delivery's record is written now
// instead of after recordDelay (it does not wait for it to be written).
func (c *Consumer) Keep(ds ...*Delivery) {
	kept := false
	for _, d := range ds {
		if d == nil {
			continue
		}
		if r, ok := d.Token.(*recordState); ok && !r.over() {
			r.hurry()
			kept = true
		}
	}
	if kept {
		c.passPending(false)
	}
}

// AckAsync acknowledges deliveries without waiting: the next pop script
// call carries the acks, or the flusher sends them within ackLinger, and
// retries them while Redis is unreachable. The worker uses it for acks
// that nothing waits on (acks early), so settling a message wakes no
// goroutine. Tags still unsent when the consumer closes are sent then;
// if that fails too they stay in unacked and the visibility sweep
// redelivers them (at least once, as kombu).
func (c *Consumer) AckAsync(ds ...*Delivery) {
	a := &pendingAck{}
	tags := a.one[:0]
	for _, d := range ds {
		if d == nil || d.Tag == "" {
			continue
		}
		if r, ok := d.Token.(*recordState); ok && r.deferAck(d.Tag) {
			continue // unrecorded: nothing to send; or the recorder acks it
		}
		tags = append(tags, d.Tag)
	}
	if len(tags) == 0 {
		return
	}
	a.tags = tags
	if !c.enqueueAck(a) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.ackTags(ctx, tags); err != nil {
			c.t.log.Error("ack failed; the visibility timeout will redeliver", "count", len(tags), "error", err)
		}
	}
}

// enqueueAck queues a for the next pop or the flusher. It returns false
// (queueing nothing) once the flusher has stopped.
func (c *Consumer) enqueueAck(a *pendingAck) bool {
	c.ackMu.Lock()
	if c.ackDirect {
		c.ackMu.Unlock()
		return false
	}
	wasEmpty := len(c.acks) == 0
	c.acks = append(c.acks, a)
	c.ackMu.Unlock()
	if wasEmpty {
		select {
		case c.ackKick <- struct{}{}:
		default:
		}
	}
	return true
}

// settleAcks reports the outcome of sending acks: waiters get it; on
// failure, fire-and-forget acks go back to the queue for another try.
func (c *Consumer) settleAcks(acks []*pendingAck, err error) {
	var retry []*pendingAck
	for _, a := range acks {
		if a.done != nil {
			a.done <- err
		} else if err != nil {
			retry = append(retry, a)
		}
	}
	if len(retry) == 0 {
		return
	}
	c.ackMu.Lock()
	c.acks = append(retry, c.acks...)
	c.ackMu.Unlock()
	select {
	case c.ackKick <- struct{}{}:
	default:
	}
}

// takeAcks takes pending acks for a pop to carry, whole calls only, up to
// maxCarriedAcks tags (a single larger call is left to the flusher).
func (c *Consumer) takeAcks() ([]*pendingAck, int) {
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	n, k := 0, 0
	for ; k < len(c.acks); k++ {
		if n+len(c.acks[k].tags) > maxCarriedAcks {
			break
		}
		n += len(c.acks[k].tags)
	}
	if k == 0 {
		return nil, 0
	}
	out := append([]*pendingAck(nil), c.acks[:k]...)
	rest := copy(c.acks, c.acks[k:])
	clear(c.acks[rest:])
	c.acks = c.acks[:rest]
	return out, n
}

// ackLoop sends the acks no pop carried within ackLinger, retrying with
// backoff while Redis is unreachable. When the consumer closes it sends
// what is left (a few tries) and from then on Ack sends directly.
func (c *Consumer) ackLoop() {
	defer close(c.ackDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-c.ackKick:
			timer.Reset(c.linger)
			select {
			case <-timer.C:
			case <-c.closing:
				timer.Stop()
				c.flushOnClose()
				return
			}
		case <-c.closing:
			c.flushOnClose()
			return
		}
		if err := c.flushAcks(); err != nil {
			c.t.log.Warn("ack failed, retrying", "error", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-c.closing:
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
	}
}

// flushAcks sends every queued ack in one MULTI/EXEC and reports the
// outcome (failed fire-and-forget acks are queued again).
func (c *Consumer) flushAcks() error {
	c.ackMu.Lock()
	acks := c.acks
	c.acks = nil
	c.ackMu.Unlock()
	if len(acks) == 0 {
		return nil
	}
	var tags []string
	for _, a := range acks {
		tags = append(tags, a.tags...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := c.ackTags(ctx, tags)
	cancel()
	c.settleAcks(acks, err)
	return err
}

// flushOnClose sends what is queued, trying a few times, then makes Ack
// and AckAsync send directly.
func (c *Consumer) flushOnClose() {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		c.ackMu.Lock()
		if len(c.acks) == 0 || attempt > 5 {
			left := c.acks
			c.acks = nil
			c.ackDirect = true
			c.ackMu.Unlock()
			var n int
			for _, a := range left {
				n += len(a.tags)
				if a.done != nil {
					a.done <- errors.New("redistransport: ack not sent, consumer closed")
				}
			}
			if n > 0 {
				c.t.log.Error("acks not sent; the visibility timeout will redeliver", "count", n)
			}
			return
		}
		c.ackMu.Unlock()
		if c.flushAcks() == nil {
			continue
		}
		time.Sleep(backoff)
		backoff *= 2
	}
}

func (c *Consumer) ackTags(ctx context.Context, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	t := c.t
	members := make([]any, len(tags))
	for i, tag := range tags {
		members[i] = tag
	}
	pipe := t.client.TxPipeline()
	pipe.ZRem(ctx, t.ks.key(t.opts.UnackedIndexKey), members...)
	pipe.HDel(ctx, t.ks.key(t.opts.UnackedKey), tags...)
	_, err := pipe.Exec(ctx)
	return err
}

// Touch refreshes the unacked_index score of deliveries the worker still
// holds (ETA or rate-limited tasks), so no kombu process's visibility
// sweep restores them while they wait. ZADD XX only updates entries that
// still exist: a delivery already restored by someone else is not
// resurrected.
func (c *Consumer) Touch(ctx context.Context, ds ...*Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	t := c.t
	now := float64(ceilSeconds(time.Now()))
	members := make([]redis.Z, 0, len(ds))
	for _, d := range ds {
		if d != nil && d.Tag != "" {
			members = append(members, redis.Z{Score: now, Member: d.Tag})
		}
	}
	if len(members) == 0 {
		return nil
	}
	return t.client.ZAddXX(ctx, t.ks.key(t.opts.UnackedIndexKey), members...).Err()
}

// Reject without requeue is an ack (kombu drops the message). With
// requeue it is kombu's restore_by_tag(leftmost=True): the entry is
// removed and the message, marked redelivered, LPUSHed to the tail of
// its queue (priority sub-list) in one atomic step.
func (c *Consumer) Reject(ctx context.Context, d *Delivery, requeue bool) error {
	if !requeue {
		return c.Ack(ctx, d)
	}
	if err := c.waitRecorded(ctx, d); err != nil {
		return err
	}
	_, err := c.t.restoreTags(ctx, []string{d.Tag}, restoreTail)
	return err
}

// Restore hands deliveries back so they are consumed next: each is
// removed from unacked and RPUSHed (head) with headers.redelivered and
// properties.delivery_info.redelivered set, atomically. Their relative
// order is kept (the first delivery is consumed first).
func (c *Consumer) Restore(ctx context.Context, ds ...*Delivery) error {
	tags := make([]string, 0, len(ds))
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i] != nil && ds[i].Tag != "" {
			tags = append(tags, ds[i].Tag)
		}
	}
	if len(tags) == 0 {
		return nil
	}
	if err := c.waitRecorded(ctx, ds...); err != nil {
		return err
	}
	n, err := c.t.restoreTags(ctx, tags, restoreHead)
	if n > 0 {
		c.t.log.Warn(fmt.Sprintf("Restoring %d unacknowledged message(s)", n))
	}
	return err
}

// SetPrefetch is a no-op: on Redis the caller bounds Fetch's max.
func (c *Consumer) SetPrefetch(n int) error { return nil }

// Close stops consuming and the periodic sweep. Messages popped but not
// yet returned by Fetch are given back to the head of their queue
// unchanged; delivered but unsettled messages stay in unacked (restore
// them first, or the visibility sweep will).
func (c *Consumer) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.closing)
		<-c.done
		<-c.ackDone
		c.fetchMu.Lock()
		defer c.fetchMu.Unlock()
		if call := c.inflight; call != nil {
			<-call.done
			r := call.res
			c.inflight = nil
			if r.p != nil {
				if d := c.delivery(context.Background(), r.p); d != nil {
					c.buffered = append(c.buffered, d)
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c.buffered = append(c.buffered, c.repeatLostPops(ctx)...)
		if len(c.buffered) > 0 {
			err = c.giveBack(c.buffered)
			c.buffered = nil
		}
		c.ticketMu.Lock()
		tickets := c.ticketKeys
		c.ticketMu.Unlock()
		if len(tickets) > 0 {
			_ = c.t.client.Del(ctx, tickets...).Err()
		}
		cancel()
		c.passPending(true)
		c.records.Wait()
		close(c.recordQ)
		c.loops.Wait()
		c.t.mu.Lock()
		delete(c.t.consumers, c)
		c.t.mu.Unlock()
	})
	return err
}

// giveBack returns never-handed-out deliveries to the head of their
// queue's priority list, unchanged, removing their unacked entries.
func (c *Consumer) giveBack(ds []*Delivery) error {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.waitRecorded(ctx, ds...); err != nil {
		return err
	}
	pipe := t.client.Pipeline()
	for i := len(ds) - 1; i >= 0; i-- {
		d := ds[i]
		key := t.ks.key(t.ks.queueKey(d.Queue, clampPriority(d.Message.Properties.Priority)))
		keys := []string{t.ks.key(t.opts.UnackedKey), t.ks.key(t.opts.UnackedIndexKey), key}
		restoreScript.EvalSha(ctx, pipe, keys, d.Tag, "*", string(d.Raw), "R")
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		return err
	}
	return nil
}
