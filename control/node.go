// Package control is Celery's remote control ("pidbox") for a celerity
// worker: it consumes the celery.pidbox broadcast exchange like a Python
// worker's kombu Node, runs the commands `celery inspect`, `celery
// control`, `celery status` and Flower send, and replies on
// reply.celery.pidbox with the same shapes as Celery 5.2–5.6.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/events"
	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

// ErrUnknownTask is returned by Worker methods for a task name the worker
// does not know; the command answers {"error": "unknown task"}.
var ErrUnknownTask = celerity.ErrUnknownTask

// Worker is what the control node needs from the worker. Methods are
// called from the node's goroutine, concurrently with task processing.
type Worker interface {
	// Registered returns the registered task names.
	Registered() []string
	// Active returns the tasks running now.
	Active() []celerity.TaskInfo
	// Reserved returns tasks received (prefetched) but not yet started,
	// excluding ETA tasks.
	Reserved() []celerity.TaskInfo
	// Scheduled returns the tasks held for their ETA/countdown.
	Scheduled() []celerity.TaskInfo
	// Revoke adds ids to the revoked set; with terminate it also stops
	// the running ones (signal is a name like "SIGTERM", "" for the
	// default) and returns the ids it terminated.
	Revoke(ids []string, terminate bool, signal string) (terminated []string)
	// Revoked returns the revoked ids the worker remembers.
	Revoked() []string
	// SetRateLimit changes a task's rate limit ("" or "0" disables it);
	// ErrUnknownTask for an unknown name.
	SetRateLimit(task, rate string) error
	// Stats returns the worker's counters.
	Stats() celerity.Stats
	// Queues returns the task queues being consumed.
	Queues() []transports.Queue
	// Shutdown starts a warm shutdown.
	Shutdown()
}

// TimeLimiter is optionally implemented by a Worker to support the
// time_limit command; nil soft/hard mean "no limit".
type TimeLimiter interface {
	SetTimeLimit(task string, soft, hard *float64) error
}

// StampRevoker is optionally implemented by a Worker to support Celery
// 5.3+'s revoke_by_stamped_headers: headers maps a stamp name to the
// revoked values; with terminate it returns the values of the running
// tasks it terminated, by stamp name.
type StampRevoker interface {
	RevokeByStampedHeaders(headers map[string][]any, terminate bool, signal string) map[string][]any
}

// QueueController is optionally implemented by a Worker to support the
// add_consumer and cancel_consumer commands.
type QueueController interface {
	AddConsumer(q transports.Queue) error
	CancelConsumer(queue string) error
}

// PoolResizer is optionally implemented by a Worker to support pool_grow
// and pool_shrink; an error wrapping celerity.ErrAutoscaling gives
// Celery's answer for an autoscaled pool.
type PoolResizer interface {
	Grow(n int) error
	Shrink(n int) error
}

// Autoscaler is optionally implemented by a Worker to support the
// autoscale command: nil leaves a bound unchanged; an error wrapping
// celerity.ErrNotAutoscaling is Celery's "Autoscale not enabled".
type Autoscaler interface {
	Autoscale(max, min *int) (newMax, newMin int, err error)
}

// Events controls the event dispatcher (implemented by
// *events.Dispatcher) for enable_events, disable_events and heartbeat.
type Events interface {
	// EnableTaskEvents turns task events on; false if they already were.
	EnableTaskEvents() bool
	// DisableTaskEvents turns task events off; false if they already were.
	DisableTaskEvents() bool
	// SendHeartbeat sends a worker-heartbeat now.
	SendHeartbeat()
}

// The event dispatcher serves the event commands directly.
var _ Events = (*events.Dispatcher)(nil)

// Options configure a Node. The zero value gives Celery's defaults.
type Options struct {
	// Namespace is the mailbox name (Celery's control_exchange), default
	// "celery": exchange "celery.pidbox", replies "reply.celery.pidbox".
	Namespace string
	// Serializer encodes replies (Celery's task_serializer), default json.
	Serializer string
	// Accept lists the accepted request content types (accept_content),
	// default ["json"].
	Accept []string
	// QueueTTL and QueueExpires are control_queue_ttl and
	// control_queue_expires (AMQP x-message-ttl and x-expires of the
	// node's queue): default 300 s and 10 s.
	QueueTTL, QueueExpires time.Duration
	// Clock is the worker's Lamport clock, shared with the event
	// dispatcher; nil creates one.
	Clock *events.Clock
	// Events is the event dispatcher; nil makes the event commands
	// answer with an error.
	Events Events
	// Conf is what the conf command reports (setting name → value).
	Conf map[string]any
	// Broker is the "broker" section of stats (kombu Connection.info()
	// without the password); nil reports {"transport": <driver>}.
	Broker map[string]any
	// Logger receives command logs; default slog.Default().
	Logger *slog.Logger
	// Version is reported by the report command.
	Version string
}

// Node is a worker's pidbox node.
type Node struct {
	tr       transports.Transport
	hostname string
	w        Worker
	opts     Options
	reg      *kombu.Registry
	log      *slog.Logger
	clock    *events.Clock
	handlers map[string]handler
	started  time.Time
	pid      int

	mu           sync.Mutex
	replyDeclare bool // reply exchange declared (AMQP)
}

type handler func(n *Node, args map[string]any) (any, error)

// New returns a node named hostname (the worker's nodename, e.g.
// "celery@host") serving w over tr. tr must implement
// transports.Broadcaster for Run.
func New(tr transports.Transport, hostname string, w Worker, opts Options) *Node {
	if opts.Namespace == "" {
		opts.Namespace = "celery"
	}
	if opts.Serializer == "" {
		opts.Serializer = "json"
	}
	if opts.QueueTTL == 0 {
		opts.QueueTTL = 300 * time.Second
	}
	if opts.QueueExpires == 0 {
		opts.QueueExpires = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = &events.Clock{}
	}
	reg, err := kombu.NewRegistry(opts.Accept)
	if err != nil {
		opts.Logger.Warn("control: bad accept list, using json", "error", err)
		reg, _ = kombu.NewRegistry(nil)
	}
	return &Node{
		tr: tr, hostname: hostname, w: w, opts: opts, reg: reg,
		log: opts.Logger, clock: opts.Clock, handlers: commands,
		started: time.Now(), pid: os.Getpid(),
	}
}

// Exchange returns the mailbox exchange name, e.g. "celery.pidbox".
func (n *Node) Exchange() string { return n.opts.Namespace + ".pidbox" }

// ReplyExchange returns the reply exchange name, "reply.celery.pidbox".
func (n *Node) ReplyExchange() string { return "reply." + n.opts.Namespace + ".pidbox" }

// QueueName returns the node's queue, "<hostname>.celery.pidbox".
func (n *Node) QueueName() string { return n.hostname + "." + n.Exchange() }

// Run subscribes to the mailbox and serves commands until ctx is done
// (nil) or the subscription fails. Commands run one at a time, in order.
// A shutdown command calls Worker.Shutdown and keeps serving.
func (n *Node) Run(ctx context.Context) error {
	b, ok := n.tr.(transports.Broadcaster)
	if !ok {
		return fmt.Errorf("control: transport %T cannot consume broadcast exchanges", n.tr)
	}
	sub, err := b.Subscribe(ctx, transports.Broadcast{
		Exchange: transports.Exchange{Name: n.Exchange(), Type: "fanout"},
		Queue:    n.QueueName(),
		QueueArguments: map[string]any{
			"x-message-ttl": n.opts.QueueTTL.Milliseconds(),
			"x-expires":     n.opts.QueueExpires.Milliseconds(),
		},
	})
	if err != nil {
		return fmt.Errorf("control: subscribe %s: %w", n.Exchange(), err)
	}
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-sub.Messages():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("control: mailbox subscription ended")
			}
			n.HandleMessage(ctx, m)
		}
	}
}

// HandleMessage decodes one pidbox message and, when it is for this
// node, runs the command and publishes the reply. It returns the
// command's reply (nil when not for this node or undecodable).
func (n *Node) HandleMessage(ctx context.Context, m *kombu.Message) any {
	req, err := DecodeRequest(m, n.reg)
	if err != nil {
		n.log.Error(fmt.Sprintf("Cannot decode message: %v", err))
		return nil
	}
	n.clock.Adjust(req.Clock)
	if !req.For(n.hostname) {
		return nil
	}
	return n.Dispatch(ctx, req)
}

// errShutdown makes Dispatch skip the reply, like Celery's WorkerShutdown.
var errShutdown = errors.New("shutdown")

// Dispatch runs req (already filtered) and replies if it asks for it.
func (n *Node) Dispatch(ctx context.Context, req *Request) any {
	n.log.Debug("pidbox received method", "method", req.Method, "arguments", req.Arguments, "ticket", req.Ticket)
	var reply any
	h, ok := n.handlers[req.Method]
	if !ok {
		err := fmt.Sprintf("KeyError(%s)", pyStr(req.Method))
		n.log.Error("pidbox command error: " + err)
		reply = map[string]any{"error": err}
	} else {
		res, err := h(n, req.Arguments)
		switch {
		case errors.Is(err, errShutdown):
			return nil
		case err != nil:
			n.log.Error("pidbox command error: " + err.Error())
			reply = map[string]any{"error": err.Error()}
		default:
			reply = res
		}
	}
	if req.ReplyTo != nil {
		if err := n.reply(ctx, req, map[string]any{n.hostname: reply}); err != nil {
			n.log.Warn("control: cannot publish reply", "method", req.Method, "error", err)
		}
	}
	return reply
}

// reply publishes data like kombu's Mailbox._publish_reply: transient,
// headers {ticket, clock}, to the reply exchange (declared direct,
// non-durable).
func (n *Node) reply(ctx context.Context, req *Request, data any) error {
	body, ct, ce, err := kombu.Marshal(n.opts.Serializer, data, kombu.JSONPlain)
	if err != nil {
		return err
	}
	ex := req.ReplyTo.Exchange
	if b, ok := n.tr.(transports.Broadcaster); ok && b.DriverType() != "redis" {
		n.mu.Lock()
		declared := n.replyDeclare
		n.mu.Unlock()
		if !declared {
			if err := b.DeclareExchange(ctx, transports.Exchange{Name: ex, Type: "direct"}); err != nil {
				return err
			}
			n.mu.Lock()
			n.replyDeclare = true
			n.mu.Unlock()
		}
	}
	m := &kombu.Message{
		Body: body, ContentType: ct, ContentEncoding: ce,
		Headers:    map[string]any{"ticket": req.Ticket, "clock": n.clock.Forward()},
		Properties: kombu.Properties{DeliveryMode: 1},
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return n.tr.Publish(pctx, ex, req.ReplyTo.RoutingKey, m)
}
