package amqptransport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/celerity-go/celerity/transports"
	amqp "github.com/rabbitmq/amqp091-go"
)

// generation identifies one AMQP channel of a consumer. Deliveries carry
// it as Token; settling is only possible while it is still current.
type generation struct {
	n  uint64
	ch *amqp.Channel
	// floor: every delivery tag <= floor is settled; settled holds the
	// settled tags above floor. Used to ack contiguous runs with
	// multiple=true. Guarded by consumer.mu.
	floor   uint64
	settled map[uint64]struct{}

	// tags are the consumer tags by queue index; cancelled marks the
	// queues cancelled by CancelQueue, whose deliveries channel closing
	// does not end the generation. ended is set once forward stops
	// adding consumers. Guarded by consumer.mu.
	tags      map[int]string
	cancelled map[int]bool
	ended     bool
	qver      uint64        // the consumer's queue set this generation consumes
	stop      chan struct{} // closed to end the generation
	stopOnce  sync.Once
	fwd       sync.WaitGroup // the forwarders
	lost      chan *amqp.Error
}

func (g *generation) end() { g.stopOnce.Do(func() { close(g.stop) }) }

// subscription is one basic.consume of a generation.
type subscription struct {
	qi    int
	queue string
	dc    <-chan amqp.Delivery
}

type inbound struct {
	d     amqp.Delivery
	gen   *generation
	queue string
}

// consumer implements transports.Consumer on one AMQP channel, recreated
// after a channel or connection loss.
type consumer struct {
	t      *Transport
	global bool

	mu       sync.Mutex
	gen      *generation // nil while (re)subscribing
	prefetch int
	// queues are every queue consumed since the start, index-aligned
	// with bufs (appended under both mu and bufMu); active marks those
	// consumed now, and qver counts changes to the set, so that a
	// subscription made while it changed is made again. Guarded by mu.
	queues []string
	active []bool
	qver   uint64

	// Deliveries wait in one FIFO per queue; Fetch takes from them round
	// robin so that one busy queue cannot starve the others.
	bufMu  sync.Mutex
	bufs   []fifo
	next   int
	notify chan struct{} // capacity 1: "something was buffered"

	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	subErr chan error // first subscription result, then nil
}

var _ transports.Consumer = (*consumer)(nil)

// Consume opens a channel, sets basic.qos (prefetch, global=true unless a
// consumed queue was declared as a quorum queue) and starts basic.consume
// with manual acks on every queue. It returns once the first subscription
// succeeded; later channel or connection losses are recovered in the
// background.
func (t *Transport) Consume(ctx context.Context, queues []string, prefetch int) (transports.Consumer, error) {
	if len(queues) == 0 {
		return nil, errors.New("amqp: no queues to consume")
	}
	select {
	case <-t.closed:
		return nil, transports.ErrClosed
	default:
	}
	global := true
	for _, q := range queues {
		if d, ok := t.declaredQueue(q); ok {
			if qt, _ := d.Arguments["x-queue-type"].(string); qt == "quorum" {
				global = false
			}
		}
	}
	c := &consumer{
		t:        t,
		queues:   slices.Clone(queues),
		active:   slices.Repeat([]bool{true}, len(queues)),
		global:   global,
		prefetch: prefetch,
		bufs:     make([]fifo, len(queues)),
		notify:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		subErr:   make(chan error, 1),
	}
	t.mu.Lock()
	t.consumers[c] = struct{}{}
	t.mu.Unlock()
	c.wg.Add(1)
	go c.run()
	select {
	case err := <-c.subErr:
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

// run subscribes, forwards deliveries until the channel dies, and
// resubscribes, until the consumer is closed.
func (c *consumer) run() {
	defer c.wg.Done()
	first := true
	delay := c.t.opts.ReconnectMin
	var n uint64
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		conn, err := c.t.connection(ctx)
		cancel()
		if err != nil {
			c.report(&first, err)
			return // closed
		}
		n++
		g, subs, err := c.subscribe(conn, n)
		if err != nil {
			if first && !conn.IsClosed() {
				// A definite error (missing queue, ...) on the first
				// subscription goes to the caller.
				c.report(&first, err)
				return
			}
			c.t.log.Error("Cannot consume, retrying", "queues", c.consumed(), "error", err)
			select {
			case <-c.done:
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, c.t.opts.ReconnectMax)
			continue
		}
		delay = c.t.opts.ReconnectMin
		c.mu.Lock()
		if c.qver != g.qver {
			// AddQueue or CancelQueue ran meanwhile: subscribe again.
			c.mu.Unlock()
			g.ch.Close()
			continue
		}
		c.gen = g
		c.mu.Unlock()
		if !first {
			c.t.log.Info("Consumer resubscribed", "queues", c.consumed(), "generation", n)
		}
		c.report(&first, nil)

		c.forward(g, subs)
		ch := g.ch

		c.mu.Lock()
		if c.gen == g {
			c.gen = nil
		}
		c.mu.Unlock()
		select {
		case <-c.done:
			ch.Close()
			return
		default:
		}
		ch.Close() // a cancelled consumer leaves the channel open
		c.t.log.Warn("Consumer channel lost, resubscribing", "queues", c.consumed())
	}
}

func (c *consumer) report(first *bool, err error) {
	if *first {
		*first = false
		c.subErr <- err
	}
}

// consumed returns the queues consumed now.
func (c *consumer) consumed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for i, q := range c.queues {
		if c.active[i] {
			out = append(out, q)
		}
	}
	return out
}

// consumerTag names generation n's consumer of queue index qi.
func consumerTag(n uint64, qi int) string {
	return "celerity." + strconv.FormatUint(n, 10) + "." + strconv.Itoa(qi)
}

// subscribe opens channel generation n, sets QoS and starts consuming the
// active queues. The generation's qver is the queue set it consumes.
func (c *consumer) subscribe(conn *amqp.Connection, n uint64) (*generation, []subscription, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*generation, []subscription, error) {
		ch.Close()
		return nil, nil, err
	}
	g := &generation{n: n, ch: ch, settled: map[uint64]struct{}{}, tags: map[int]string{},
		cancelled: map[int]bool{}, stop: make(chan struct{})}
	var subs []subscription
	c.mu.Lock()
	prefetch := c.prefetch
	g.qver = c.qver
	for i, q := range c.queues {
		if c.active[i] {
			subs = append(subs, subscription{qi: i, queue: q})
		}
	}
	c.mu.Unlock()
	if err := ch.Qos(prefetch, 0, c.global); err != nil {
		return fail(fmt.Errorf("amqp: basic.qos: %w", err))
	}
	// All but the last basic.consume go out without waiting, so the
	// queues start delivering at the same moment (fairness between them);
	// the broker handles methods in order, so the last consume-ok (or the
	// channel error) also answers for the earlier ones.
	// The channel exception that closed the channel (e.g. NOT_FOUND for a
	// missing queue consumed without waiting) is the real reason; a later
	// method only sees "channel/connection is not open".
	g.lost = ch.NotifyClose(make(chan *amqp.Error, 1))
	for i := range subs {
		last := i == len(subs)-1
		tag := consumerTag(n, subs[i].qi)
		dc, err := ch.Consume(subs[i].queue, tag, false, false, false, !last, nil)
		if err != nil {
			select {
			case reason, ok := <-g.lost:
				if ok && reason != nil {
					err = reason
				}
			case <-time.After(time.Second):
			}
			return fail(fmt.Errorf("amqp: consume %q: %w", subs[i].queue, err))
		}
		subs[i].dc = dc
		g.tags[subs[i].qi] = tag
	}
	return g, subs, nil
}

// forward buffers deliveries of one channel generation until the channel
// is lost, a deliveries channel closes for another reason than
// CancelQueue (a server-side cancel), or the consumer is closed. The
// buffers are bounded by the prefetch count.
func (c *consumer) forward(g *generation, subs []subscription) {
	for _, sub := range subs {
		g.fwd.Add(1)
		go c.forwarder(g, sub)
	}
	select {
	case <-g.stop:
	case <-g.lost:
	case <-c.done:
	}
	g.end()
	c.mu.Lock()
	g.ended = true
	c.mu.Unlock()
	// If the channel is still open (server cancel of one queue), closing
	// it ends the other deliveries channels.
	g.ch.Close()
	g.fwd.Wait()
}

// forwarder buffers one subscription's deliveries.
func (c *consumer) forwarder(g *generation, sub subscription) {
	defer g.fwd.Done()
	for {
		select {
		case d, ok := <-sub.dc:
			if !ok {
				c.mu.Lock()
				ours := g.cancelled[sub.qi]
				c.mu.Unlock()
				if !ours {
					g.end()
				}
				return
			}
			c.bufMu.Lock()
			c.bufs[sub.qi].push(inbound{d: d, gen: g, queue: sub.queue})
			c.bufMu.Unlock()
			select {
			case c.notify <- struct{}{}:
			default:
			}
		case <-c.done:
			return
		case <-g.stop:
			return
		}
	}
}

// AddQueue starts consuming queue on the live channel (celery control
// add_consumer), or from the next subscription while the consumer is
// resubscribing; a queue consumed already is left as it is.
func (c *consumer) AddQueue(queue string) error {
	if queue == "" {
		return errors.New("amqp: add queue: empty name")
	}
	if d, ok := c.t.declaredQueue(queue); ok && c.global {
		if qt, _ := d.Arguments["x-queue-type"].(string); qt == "quorum" {
			// RabbitMQ refuses a quorum queue consumer on a channel with
			// global QoS, and would close the channel.
			return fmt.Errorf("amqp: add queue %q: a quorum queue cannot join a consumer with global QoS; consume it from the start", queue)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	qi := slices.Index(c.queues, queue)
	switch {
	case qi >= 0 && c.active[qi]:
		return nil
	case qi >= 0:
		c.active[qi] = true
	default:
		c.bufMu.Lock()
		c.queues = append(c.queues, queue)
		c.bufs = append(c.bufs, fifo{})
		c.bufMu.Unlock()
		c.active = append(c.active, true)
		qi = len(c.queues) - 1
	}
	c.qver++
	g := c.gen
	if g == nil || g.ended {
		return nil // the next subscription consumes it
	}
	tag := consumerTag(g.n, qi)
	dc, err := g.ch.Consume(queue, tag, false, false, false, false, nil)
	if err != nil {
		c.active[qi] = false
		return fmt.Errorf("amqp: consume %q: %w", queue, err)
	}
	g.qver = c.qver
	g.tags[qi] = tag
	delete(g.cancelled, qi)
	g.fwd.Add(1)
	go c.forwarder(g, subscription{qi: qi, queue: queue, dc: dc})
	return nil
}

// CancelQueue stops consuming queue (celery control cancel_consumer) with
// basic.cancel. Deliveries already received from it are still handed
// out; with no queue left the consumer waits for AddQueue.
func (c *consumer) CancelQueue(queue string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	qi := slices.Index(c.queues, queue)
	if qi < 0 || !c.active[qi] {
		return nil
	}
	c.active[qi] = false
	c.qver++
	g := c.gen
	if g == nil || g.ended {
		return nil
	}
	g.qver = c.qver
	tag, ok := g.tags[qi]
	if !ok {
		return nil
	}
	g.cancelled[qi] = true
	delete(g.tags, qi)
	if err := g.ch.Cancel(tag, false); err != nil {
		return fmt.Errorf("amqp: cancel %q: %w", queue, err)
	}
	return nil
}

// Queues returns the queues consumed now.
func (c *consumer) Queues() []string { return c.consumed() }

// fifo is a queue of buffered deliveries.
type fifo struct {
	items []inbound
	head  int
}

func (f *fifo) push(in inbound) { f.items = append(f.items, in) }

func (f *fifo) pop() (inbound, bool) {
	if f.head == len(f.items) {
		return inbound{}, false
	}
	in := f.items[f.head]
	f.items[f.head] = inbound{}
	f.head++
	if f.head == len(f.items) {
		f.items, f.head = f.items[:0], 0
	}
	return in, true
}

func (f *fifo) len() int { return len(f.items) - f.head }

// current returns the live generation, or nil.
func (c *consumer) current() *generation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Fetch blocks until one delivery is available (or ctx is done, or the
// consumer is closed), then adds what is immediately available up to max,
// taking from the consumed queues round robin. Deliveries buffered from a
// channel that has since died are dropped here: the broker requeued them
// and delivers them again.
func (c *consumer) Fetch(ctx context.Context, max int) ([]*transports.Delivery, error) {
	if max < 1 {
		max = 1
	}
	for {
		select {
		case <-c.done:
			return nil, transports.ErrClosed
		default:
		}
		if out := c.take(max); len(out) > 0 {
			return out, nil
		}
		select {
		case <-c.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, transports.ErrClosed
		}
	}
}

// take removes up to max live deliveries from the buffers, one queue at a
// time in turn.
func (c *consumer) take(max int) []*transports.Delivery {
	cur := c.current()
	c.bufMu.Lock()
	defer c.bufMu.Unlock()
	n := len(c.bufs)
	avail := 0
	for i := range c.bufs {
		avail += c.bufs[i].len()
	}
	if avail == 0 {
		return nil
	}
	out := make([]*transports.Delivery, 0, min(max, avail))
	for len(out) < max {
		took := false
		for i := 0; i < n && len(out) < max; i++ {
			qi := (c.next + i) % n
			in, ok := c.bufs[qi].pop()
			if !ok {
				continue
			}
			took = true
			if in.gen != cur {
				continue // stale: requeued by the broker
			}
			out = append(out, c.delivery(in))
			c.next = (qi + 1) % n
			break
		}
		if !took {
			break
		}
	}
	return out
}

func (c *consumer) delivery(in inbound) *transports.Delivery {
	return &transports.Delivery{
		Message:     MessageFromDelivery(&in.d),
		Queue:       in.queue,
		Redelivered: in.d.Redelivered,
		Tag:         strconv.FormatUint(in.d.DeliveryTag, 10),
		Token:       in.gen,
	}
}

// settleable splits ds into the tags that belong to the live generation
// and an error describing the stale ones. Called with c.mu held.
func (c *consumer) settleable(ds []*transports.Delivery) (*generation, []uint64, error) {
	g := c.gen
	tags := make([]uint64, 0, len(ds))
	stale := 0
	var bad error
	for _, d := range ds {
		dg, _ := d.Token.(*generation)
		if dg == nil {
			bad = errors.Join(bad, fmt.Errorf("amqp: delivery %q was not produced by this transport", d.Tag))
			continue
		}
		if dg != g || g == nil {
			stale++
			continue
		}
		tag, err := strconv.ParseUint(d.Tag, 10, 64)
		if err != nil {
			bad = errors.Join(bad, fmt.Errorf("amqp: bad delivery tag %q", d.Tag))
			continue
		}
		tags = append(tags, tag)
	}
	if stale > 0 {
		c.t.log.Warn("Dropping settlement of deliveries from a closed channel; the broker redelivers them", "count", stale)
		bad = errors.Join(bad, fmt.Errorf("%w (%d deliveries)", ErrStaleDelivery, stale))
	}
	return g, tags, bad
}

// markSettled records tags as settled and advances the floor.
func (g *generation) markSettled(tags []uint64) {
	for _, t := range tags {
		if t > g.floor {
			g.settled[t] = struct{}{}
		}
	}
	for {
		if _, ok := g.settled[g.floor+1]; !ok {
			return
		}
		delete(g.settled, g.floor+1)
		g.floor++
	}
}

// Ack acknowledges deliveries. When the tags (with everything settled
// before) cover a contiguous run from the oldest unsettled tag, that run
// is acked with one basic.ack multiple=true; the rest are acked one by
// one. Deliveries from a closed channel are not acked and reported with
// ErrStaleDelivery.
func (c *consumer) Ack(ctx context.Context, ds ...*transports.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g, tags, bad := c.settleable(ds)
	if len(tags) == 0 {
		return bad
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	// Longest prefix of tags that, with settled ones, is contiguous from
	// floor+1.
	next := g.floor + 1
	i := 0
	for i < len(tags) {
		if tags[i] == next {
			i++
			next++
			continue
		}
		if _, ok := g.settled[next]; ok && next < tags[i] {
			next++
			continue
		}
		break
	}
	var err error
	if i > 1 {
		err = g.ch.Ack(tags[i-1], true)
	} else {
		i = 0
	}
	for _, tag := range tags[i:] {
		if err != nil {
			break
		}
		err = g.ch.Ack(tag, false)
	}
	if err != nil {
		return errors.Join(bad, fmt.Errorf("amqp: ack: %w", err))
	}
	g.markSettled(tags)
	return bad
}

// Reject settles d with basic.reject; requeue=true hands it back to the
// broker, otherwise it is dropped or dead-lettered.
func (c *consumer) Reject(ctx context.Context, d *transports.Delivery, requeue bool) error {
	return c.reject([]*transports.Delivery{d}, requeue)
}

// Restore hands deliveries back with basic.reject(requeue=true); the broker
// redelivers them marked redelivered.
func (c *consumer) Restore(ctx context.Context, ds ...*transports.Delivery) error {
	return c.reject(ds, true)
}

func (c *consumer) reject(ds []*transports.Delivery, requeue bool) error {
	if len(ds) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g, tags, bad := c.settleable(ds)
	for i, tag := range tags {
		if err := g.ch.Reject(tag, requeue); err != nil {
			g.markSettled(tags[:i])
			return errors.Join(bad, fmt.Errorf("amqp: reject: %w", err))
		}
	}
	if len(tags) > 0 {
		g.markSettled(tags)
	}
	return bad
}

// SetPrefetch changes the prefetch count with basic.qos (same global flag
// as at subscription); it is remembered for resubscriptions.
func (c *consumer) SetPrefetch(n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prefetch = n
	if c.gen == nil {
		return nil
	}
	if err := c.gen.ch.Qos(n, 0, c.global); err != nil {
		return fmt.Errorf("amqp: basic.qos: %w", err)
	}
	return nil
}

// Close cancels the subscription by closing the channel; unsettled
// deliveries return to their queues.
func (c *consumer) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		g := c.gen
		c.gen = nil
		c.mu.Unlock()
		if g != nil {
			g.ch.Close()
		}
		c.wg.Wait()
		c.t.mu.Lock()
		delete(c.t.consumers, c)
		c.t.mu.Unlock()
	})
	return nil
}
