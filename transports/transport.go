// Package transports defines the small interface every broker transport
// implements. Transports move kombu envelopes, never decoded tasks: decoding
// is the job of the kombu and protocolv2 packages.
package transports

import (
	"context"
	"errors"

	"github.com/celerity-go/celerity/kombu"
)

// ErrClosed is returned by operations on a transport or consumer that has
// been closed.
var ErrClosed = errors.New("transports: closed")

// ErrStaleDelivery is reported (wrapped) when a delivery can no longer be
// settled because the connection or channel it arrived on is gone; the
// broker has already made the message available again, so retrying the
// settlement is pointless.
var ErrStaleDelivery = errors.New("transports: delivery from a closed channel (the broker requeued it)")

// Delivery is one message handed to the worker by a consumer. It must be
// settled exactly once with Ack, Reject or Restore on the consumer that
// returned it.
type Delivery struct {
	// Message is the decoded envelope. Its body is still serialized.
	Message *kombu.Message
	// Raw is the envelope exactly as read from the broker (the Redis JSON
	// document); nil on AMQP. It is read-only: it may share memory with
	// the transport's own copy.
	Raw []byte
	// Queue is the queue the message was taken from.
	Queue string
	// Redelivered reports that the broker delivered this message before.
	Redelivered bool
	// Tag is the transport's handle for settling the message: the kombu
	// delivery_tag on Redis, the AMQP delivery tag (decimal) on RabbitMQ.
	Tag string
	// Token is private to the transport that produced the delivery (for
	// example the AMQP channel generation it arrived on).
	Token any
}

// Queue describes a queue to declare, with the exchange it is bound to, in
// kombu's terms.
type Queue struct {
	Name         string
	Exchange     string // "" means the queue name (Celery's default)
	ExchangeType string // direct, topic, fanout; "" means direct
	RoutingKey   string // "" means the queue name
	Durable      bool
	AutoDelete   bool
	// MaxPriority sets x-max-priority on AMQP; 0 leaves it unset.
	MaxPriority int
	// Arguments are extra queue arguments (AMQP only), e.g. x-queue-type.
	Arguments map[string]any
}

// Consumer pulls deliveries from a set of queues.
type Consumer interface {
	// Fetch blocks until at least one message is available (or ctx is done)
	// and returns between 1 and max deliveries. The caller bounds max by
	// its prefetch budget. On Redis every returned delivery is already
	// recorded in the unacked structures.
	Fetch(ctx context.Context, max int) ([]*Delivery, error)
	// Ack settles deliveries as done. It may batch them in one round trip.
	Ack(ctx context.Context, ds ...*Delivery) error
	// Reject settles a delivery as refused; requeue puts it back at the
	// tail of its queue (AMQP: the broker decides), otherwise it is dropped
	// or dead-lettered.
	Reject(ctx context.Context, d *Delivery, requeue bool) error
	// Restore hands back deliveries that were never started (warm shutdown)
	// so they are consumed next, marked as redelivered.
	Restore(ctx context.Context, ds ...*Delivery) error
	// SetPrefetch changes the prefetch count (AMQP basic.qos); a no-op where
	// prefetch is enforced by the caller.
	SetPrefetch(n int) error
	// Close stops consuming. Unsettled deliveries stay with the broker.
	Close() error
}

// Transport is a connection to one broker.
type Transport interface {
	// Declare creates queues, exchanges and bindings the way kombu does.
	Declare(ctx context.Context, qs ...Queue) error
	// Consume starts consuming the named (already declared) queues.
	Consume(ctx context.Context, queues []string, prefetch int) (Consumer, error)
	// Publish sends one message to exchange with routingKey. "" is the
	// default exchange, where routingKey names the queue.
	Publish(ctx context.Context, exchange, routingKey string, m *kombu.Message) error
	// Close releases the connection.
	Close() error
}
