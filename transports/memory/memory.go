// Package memory is an in-process transport for examples and handler unit
// tests. It keeps kombu's Redis semantics where transports differ: a
// lower priority number is consumed first, Reject with requeue puts the
// message at the tail, Restore at the head, and deliveries of a closed
// consumer stay unacknowledged until Broker.Recover (the simulated
// visibility timeout) hands them back.
package memory

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

// Broker is the shared state several Transports (connections) talk to.
type Broker struct {
	mu       sync.Mutex
	queues   map[string]*queue
	bindings map[string][]binding // exchange -> bindings
	types    map[string]string    // exchange -> type
	unacked  map[string]*entry    // tag -> entry of a live or dead consumer
	wake     chan struct{}        // closed and replaced on every push
	seq      atomic.Uint64
}

type binding struct{ routingKey, queue string }

type entry struct {
	msg      *kombu.Message
	queue    string
	consumer *Consumer
}

// queue holds messages in consumption order; items of equal priority
// keep FIFO order.
type queue struct {
	items []item
}

type item struct {
	msg *kombu.Message
	pri int
}

// NewBroker returns an empty broker.
func NewBroker() *Broker {
	return &Broker{
		queues:   map[string]*queue{},
		bindings: map[string][]binding{},
		types:    map[string]string{},
		unacked:  map[string]*entry{},
		wake:     make(chan struct{}),
	}
}

// New returns a transport on a fresh broker of its own.
func New() *Transport { return NewBroker().Transport() }

// Transport returns a new connection to b.
func (b *Broker) Transport() *Transport { return &Transport{b: b} }

// Len reports how many messages wait in queue (not counting unacked ones).
func (b *Broker) Len(queue string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q := b.queues[queue]; q != nil {
		return len(q.items)
	}
	return 0
}

// Unacked reports how many deliveries are not settled yet.
func (b *Broker) Unacked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.unacked)
}

// Recover hands deliveries of closed consumers back to the head of their
// queues, marked redelivered (what Redis' visibility sweep or AMQP's
// channel close does). It returns how many were restored.
func (b *Broker) Recover() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var tags []string
	for tag, e := range b.unacked {
		if e.consumer == nil || e.consumer.isClosed() {
			tags = append(tags, tag)
		}
	}
	slices.Sort(tags)
	for _, tag := range tags {
		e := b.unacked[tag]
		delete(b.unacked, tag)
		b.pushLocked(e.queue, redelivered(e.msg), true)
	}
	return len(tags)
}

func redelivered(m *kombu.Message) *kombu.Message {
	c := *m
	c.Properties.DeliveryInfo.Redelivered = true
	return &c
}

func (b *Broker) q(name string) *queue {
	q := b.queues[name]
	if q == nil {
		q = &queue{}
		b.queues[name] = q
	}
	return q
}

// pushLocked adds m to queue: at the head (consumed next) or the tail.
func (b *Broker) pushLocked(name string, m *kombu.Message, head bool) {
	q := b.q(name)
	it := item{msg: m, pri: min(max(m.Properties.Priority, 0), 9)}
	if head {
		i := 0
		for i < len(q.items) && q.items[i].pri < it.pri {
			i++
		}
		q.items = slices.Insert(q.items, i, it)
	} else {
		i := len(q.items)
		for i > 0 && q.items[i-1].pri > it.pri {
			i--
		}
		q.items = slices.Insert(q.items, i, it)
	}
	close(b.wake)
	b.wake = make(chan struct{})
}

// Transport is one connection to a Broker.
type Transport struct {
	b      *Broker
	closed atomic.Bool
}

var _ transports.Transport = (*Transport)(nil)

// Broker returns the broker the transport talks to.
func (t *Transport) Broker() *Broker { return t.b }

// Declare records the queues' bindings.
func (t *Transport) Declare(ctx context.Context, qs ...transports.Queue) error {
	if t.closed.Load() {
		return transports.ErrClosed
	}
	b := t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range qs {
		ex, typ, rk := q.Exchange, q.ExchangeType, q.RoutingKey
		if q.Name == "" {
			if ex != "" && typ != "" {
				b.types[ex] = typ
			}
			continue
		}
		if ex == "" {
			ex = q.Name
		}
		if typ == "" {
			typ = "direct"
		}
		if rk == "" {
			rk = q.Name
		}
		b.types[ex] = typ
		b.q(q.Name)
		bd := binding{rk, q.Name}
		if !slices.Contains(b.bindings[ex], bd) {
			b.bindings[ex] = append(b.bindings[ex], bd)
		}
	}
	return nil
}

// Publish routes m like kombu: the default exchange delivers to the
// queue named routingKey; a named exchange to its bound queues (direct:
// equal key, topic: AMQP wildcards, fanout: all). The stored copy gets a
// delivery tag (when empty) and delivery_info; m is not modified.
func (t *Transport) Publish(ctx context.Context, exchange, routingKey string, m *kombu.Message) error {
	if t.closed.Load() {
		return transports.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b := t.b
	msg := *m
	msg.Body = slices.Clone(m.Body)
	if msg.Properties.DeliveryTag == "" {
		msg.Properties.DeliveryTag = "mem-" + strconv.FormatUint(b.seq.Add(1), 10)
	}
	msg.Properties.DeliveryInfo = kombu.DeliveryInfo{Exchange: exchange, RoutingKey: routingKey}
	b.mu.Lock()
	defer b.mu.Unlock()
	if exchange == "" {
		b.pushLocked(routingKey, &msg, false)
		return nil
	}
	typ := b.types[exchange]
	seen := map[string]bool{}
	for _, bd := range b.bindings[exchange] {
		ok := false
		switch typ {
		case "fanout":
			ok = true
		case "topic":
			ok = topicMatch(bd.routingKey, routingKey)
		default:
			ok = bd.routingKey == routingKey
		}
		if ok && !seen[bd.queue] {
			seen[bd.queue] = true
			c := msg
			if len(seen) > 1 {
				c.Properties.DeliveryTag = "mem-" + strconv.FormatUint(b.seq.Add(1), 10)
			}
			b.pushLocked(bd.queue, &c, false)
		}
	}
	return nil
}

// topicMatch matches AMQP topic patterns: "*" one word, "#" zero or more.
func topicMatch(pattern, key string) bool {
	return matchWords(splitWords(pattern), splitWords(key))
}

func splitWords(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func matchWords(p, k []string) bool {
	if len(p) == 0 {
		return len(k) == 0
	}
	switch p[0] {
	case "#":
		for i := 0; i <= len(k); i++ {
			if matchWords(p[1:], k[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(k) > 0 && matchWords(p[1:], k[1:])
	}
	return len(k) > 0 && p[0] == k[0] && matchWords(p[1:], k[1:])
}

// Consume returns a consumer of queues, served round robin.
func (t *Transport) Consume(ctx context.Context, queues []string, prefetch int) (transports.Consumer, error) {
	if t.closed.Load() {
		return nil, transports.ErrClosed
	}
	if len(queues) == 0 {
		return nil, errors.New("memory: consume: no queues")
	}
	return &Consumer{t: t, queues: slices.Clone(queues), closed: make(chan struct{})}, nil
}

// Close closes the connection; its consumers stop fetching.
func (t *Transport) Close() error {
	t.closed.Store(true)
	return nil
}

// Consumer pulls deliveries from a Broker.
type Consumer struct {
	t      *Transport
	mu     sync.Mutex // guards queues (rotation)
	queues []string

	closeOnce sync.Once
	closed    chan struct{}
}

var _ transports.Consumer = (*Consumer)(nil)

func (c *Consumer) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return c.t.closed.Load()
	}
}

// Fetch blocks until at least one message is available and returns up
// to max, taking them round robin across the consumed queues.
func (c *Consumer) Fetch(ctx context.Context, max int) ([]*transports.Delivery, error) {
	if max < 1 {
		max = 1
	}
	b := c.t.b
	for {
		if c.isClosed() {
			return nil, transports.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.mu.Lock()
		b.mu.Lock()
		var out []*transports.Delivery
		for len(out) < max {
			got := false
			for i, name := range c.queues {
				q := b.queues[name]
				if q == nil || len(q.items) == 0 {
					continue
				}
				it := q.items[0]
				q.items = q.items[1:]
				b.unacked[it.msg.Properties.DeliveryTag] = &entry{msg: it.msg, queue: name, consumer: c}
				out = append(out, &transports.Delivery{
					Message:     it.msg,
					Queue:       name,
					Redelivered: it.msg.Properties.DeliveryInfo.Redelivered,
					Tag:         it.msg.Properties.DeliveryTag,
				})
				c.queues = append(append(c.queues[:i:i], c.queues[i+1:]...), name)
				got = true
				break
			}
			if !got {
				break
			}
		}
		wake := b.wake
		b.mu.Unlock()
		c.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.closed:
			return nil, transports.ErrClosed
		case <-wake:
		}
	}
}

// settle removes the unacked entries of ds owned by c and returns them.
func (c *Consumer) settle(ds []*transports.Delivery) []*entry {
	b := c.t.b
	var out []*entry
	for _, d := range ds {
		if d == nil {
			continue
		}
		if e, ok := b.unacked[d.Tag]; ok {
			delete(b.unacked, d.Tag)
			out = append(out, e)
		}
	}
	return out
}

// Ack settles deliveries as done.
func (c *Consumer) Ack(ctx context.Context, ds ...*transports.Delivery) error {
	b := c.t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	c.settle(ds)
	return nil
}

// Reject drops the delivery or, with requeue, puts it at the tail of its
// queue marked redelivered.
func (c *Consumer) Reject(ctx context.Context, d *transports.Delivery, requeue bool) error {
	b := c.t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range c.settle([]*transports.Delivery{d}) {
		if requeue {
			b.pushLocked(e.queue, redelivered(e.msg), false)
		}
	}
	return nil
}

// Restore puts deliveries back at the head of their queues, in their
// original order, marked redelivered.
func (c *Consumer) Restore(ctx context.Context, ds ...*transports.Delivery) error {
	b := c.t.b
	b.mu.Lock()
	defer b.mu.Unlock()
	es := c.settle(ds)
	for i := len(es) - 1; i >= 0; i-- {
		b.pushLocked(es[i].queue, redelivered(es[i].msg), true)
	}
	return nil
}

// SetPrefetch is a no-op.
func (c *Consumer) SetPrefetch(n int) error { return nil }

// Close stops the consumer; its unsettled deliveries wait for
// Broker.Recover.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}
