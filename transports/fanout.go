package transports

import (
	"context"

	"github.com/celerity-go/celerity/kombu"
)

// Exchange describes an exchange to declare on its own, with the flags
// kombu gives it (Celery's control exchanges are non-durable, celeryev is
// durable).
type Exchange struct {
	Name    string
	Type    string // direct, topic, fanout; "" means direct
	Durable bool
}

// Broadcast describes a no-ack subscription to a broadcast exchange, the
// way kombu consumes Celery's pidbox (fanout "celery.pidbox") and event
// (topic/fanout "celeryev") exchanges.
type Broadcast struct {
	// Exchange is declared before binding (AMQP; on Redis only its type
	// is remembered).
	Exchange Exchange
	// BindingKey is the routing key of the binding: "" for pidbox, "#" or
	// "worker.#" for event receivers. On Redis "#" becomes "*" in the
	// PSUBSCRIBE pattern, as kombu does.
	BindingKey string
	// Queue names the subscription queue, e.g. "<nodename>.celery.pidbox".
	// On AMQP it is declared non-durable and auto-delete; on Redis it is
	// only the member of the _kombu.binding set (removed at Close).
	Queue string
	// QueueArguments are AMQP queue arguments, e.g. x-message-ttl and
	// x-expires in milliseconds; ignored on Redis.
	QueueArguments map[string]any
}

// Subscription is a running broadcast subscription. Messages are taken
// without acknowledgement (kombu's no_ack): a message nobody reads in time
// is lost, as with Python consumers.
type Subscription interface {
	// Messages delivers the received messages; it is closed after Close.
	Messages() <-chan *kombu.Message
	// Close stops the subscription and removes its binding/queue.
	Close() error
}

// Broadcaster is implemented by transports that support Celery's
// broadcast exchanges (remote control and events). Subscriptions survive
// reconnects; messages published while disconnected are lost.
type Broadcaster interface {
	// DriverType is kombu's transport driver_type ("redis", "amqp"):
	// Celery declares celeryev as fanout on "redis" and topic elsewhere.
	DriverType() string
	// DeclareExchange declares ex (AMQP exchange.declare; Redis only
	// remembers the type, which decides PUBLISH versus binding lookup).
	DeclareExchange(ctx context.Context, ex Exchange) error
	// Subscribe declares the exchange, binds the subscription and starts
	// delivering messages. It returns once the subscription is active.
	Subscribe(ctx context.Context, b Broadcast) (Subscription, error)
}
