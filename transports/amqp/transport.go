// Package amqptransport is the RabbitMQ (AMQP 0-9-1) transport, built on
// github.com/rabbitmq/amqp091-go and wire-compatible with kombu's pyamqp
// transport as used by Celery.
//
// Declarations match kombu exactly (direct durable exchange, durable queue,
// binding; x-max-priority and x-queue-type when asked), so Go and Python can
// declare the same entities in any order without PRECONDITION_FAILED.
// Consumers use one channel with basic.qos global=true like Celery on
// RabbitMQ ≥ 3.3 (per-consumer QoS when a consumed queue is a quorum queue)
// and basic.consume with manual acks. Publishes wait for publisher confirms.
//
// On connection loss the transport reconnects with capped exponential
// backoff and jitter, re-declares everything it declared and re-consumes.
// Deliveries taken from a channel that has since died are never acked on
// the new channel (the broker has already requeued them): Ack reports them
// with ErrStaleDelivery.
//
// Header values are mapped as py-amqp does: every integer width becomes
// int64, float32 float64, void nil, arrays []any, nested tables
// map[string]any, decimals their exact decimal string, byte arrays []byte,
// timestamps time.Time.
package amqptransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrStaleDelivery is reported (wrapped) by Ack, Reject and Restore for
// deliveries that arrived on a channel that has since been closed. They
// were not settled: the broker requeued them when the channel died and
// will deliver them again.
var ErrStaleDelivery = transports.ErrStaleDelivery

// ErrNacked is returned by Publish when the broker negatively confirms a
// message.
var ErrNacked = errors.New("amqp: publish nacked by broker")

// ErrUnroutable is returned by Publish when Options.Mandatory is set and the
// broker returned the message as unroutable.
var ErrUnroutable = errors.New("amqp: message returned unroutable")

// Options configures a Transport. The zero value is usable.
type Options struct {
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
	// TLS is the client TLS configuration for amqps:// URLs; nil uses the
	// system defaults.
	TLS *tls.Config
	// Heartbeat is the requested AMQP heartbeat interval (the broker may
	// lower it); 0 means 10s, amqp091's default.
	Heartbeat time.Duration
	// DialTimeout bounds one TCP+handshake attempt; 0 means 10s.
	DialTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the reconnect backoff; 0 means
	// 100ms and 10s.
	ReconnectMin, ReconnectMax time.Duration
	// Mandatory publishes with mandatory=true and turns a basic.return into
	// ErrUnroutable. Publishes are then serialized on the channel.
	Mandatory bool
	// ConnectionName is shown by the management UI; "" means "celerity".
	ConnectionName string
}

// Transport is a connection to a RabbitMQ broker (with failover URLs). It
// implements transports.Transport and is safe for concurrent use.
type Transport struct {
	urls []brokerURL
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	conn      *amqp.Connection
	ready     chan struct{} // closed when conn is usable; replaced on loss
	connGen   uint64
	lastURL   int
	declared  []transports.Queue
	declIdx   map[string]int
	consumers map[*consumer]struct{}

	pubMu    sync.Mutex // guards pub; held across publishes when Mandatory
	pub      *amqp.Channel
	pubConn  *amqp.Connection
	pubClose chan *amqp.Error
	returns  chan amqp.Return

	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

var _ transports.Transport = (*Transport)(nil)

// New connects to the first reachable broker of url, a Celery broker URL or
// a ";"-separated failover list of them (amqp://, amqps://, pyamqp://). The
// vhost is taken from the URL path as kombu does ("amqp://h:5672//" is "/").
func New(ctx context.Context, url string, opts Options) (*Transport, error) {
	urls, err := parseBrokerURLs(url)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.ReconnectMin <= 0 {
		opts.ReconnectMin = 100 * time.Millisecond
	}
	if opts.ReconnectMax <= 0 {
		opts.ReconnectMax = 10 * time.Second
	}
	if opts.ConnectionName == "" {
		opts.ConnectionName = "celerity"
	}
	t := &Transport{
		urls:      urls,
		opts:      opts,
		log:       opts.Logger,
		ready:     make(chan struct{}),
		declIdx:   map[string]int{},
		consumers: map[*consumer]struct{}{},
		closed:    make(chan struct{}),
	}
	conn, err := t.dialAny(ctx)
	if err != nil {
		return nil, err
	}
	t.install(conn)
	return t, nil
}

// dialAny tries every URL once, starting after the last one that worked.
func (t *Transport) dialAny(ctx context.Context) (*amqp.Connection, error) {
	var errs []error
	for i := range t.urls {
		idx := (t.lastURL + i) % len(t.urls)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		conn, err := t.dial(ctx, t.urls[idx])
		if err == nil {
			t.lastURL = idx
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", t.urls[idx].redacted, err))
	}
	return nil, fmt.Errorf("amqp: cannot connect: %w", errors.Join(errs...))
}

func (t *Transport) dial(ctx context.Context, u brokerURL) (*amqp.Connection, error) {
	hb := t.opts.Heartbeat
	if hb <= 0 {
		hb = 10 * time.Second
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(t.opts.ConnectionName)
	timeout := t.opts.DialTimeout
	cfg := amqp.Config{
		Vhost:           u.vhost,
		Heartbeat:       hb,
		TLSClientConfig: t.opts.TLS,
		Properties:      props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake must finish within the timeout too.
			if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
				conn.Close()
				return nil, err
			}
			return conn, nil
		},
	}
	return amqp.DialConfig(u.dial, cfg)
}

// install makes conn the current connection and starts watching it.
func (t *Transport) install(conn *amqp.Connection) {
	t.mu.Lock()
	t.conn = conn
	t.connGen++
	close(t.ready)
	t.mu.Unlock()
	notify := conn.NotifyClose(make(chan *amqp.Error, 1))
	t.wg.Add(1)
	go t.watch(conn, notify)
}

// watch waits for conn to close and, unless the transport was closed,
// reconnects, re-declares and lets the consumers re-consume.
func (t *Transport) watch(conn *amqp.Connection, notify chan *amqp.Error) {
	defer t.wg.Done()
	var cause *amqp.Error
	select {
	case cause = <-notify:
	case <-t.closed:
		return
	}
	select {
	case <-t.closed:
		return
	default:
	}
	t.log.Warn("Connection to broker lost. Trying to re-establish the connection...", "error", errString(cause))
	t.mu.Lock()
	if t.conn == conn {
		t.conn = nil
		t.ready = make(chan struct{})
	}
	t.mu.Unlock()

	delay := t.opts.ReconnectMin
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), t.opts.DialTimeout*time.Duration(len(t.urls)))
		go func() {
			select {
			case <-t.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		nc, err := t.dialAny(ctx)
		if err == nil {
			err = t.redeclare(ctx, nc)
			if err != nil {
				nc.Close()
			}
		}
		cancel()
		if err == nil {
			select {
			case <-t.closed:
				nc.Close()
				return
			default:
			}
			t.log.Info("Reconnected to broker", "url", t.urls[t.lastURL].redacted, "attempts", attempt)
			t.install(nc)
			return
		}
		// Full jitter over [delay/2, delay).
		sleep := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1))
		t.log.Error("Cannot connect to broker, retrying", "error", err, "retry_in", sleep, "attempt", attempt)
		select {
		case <-t.closed:
			return
		case <-time.After(sleep):
		}
		delay = min(delay*2, t.opts.ReconnectMax)
	}
}

func errString(e *amqp.Error) string {
	if e == nil {
		return "closed"
	}
	return e.Error()
}

// redeclare replays every declaration made so far on a fresh connection.
func (t *Transport) redeclare(ctx context.Context, conn *amqp.Connection) error {
	t.mu.Lock()
	qs := append([]transports.Queue(nil), t.declared...)
	t.mu.Unlock()
	if len(qs) == 0 {
		return nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	for _, q := range qs {
		if err := declareOn(ch, q); err != nil {
			return err
		}
	}
	return nil
}

// connection returns the live connection, waiting for a reconnect while the
// broker is unreachable.
func (t *Transport) connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		t.mu.Lock()
		conn, ready := t.conn, t.ready
		t.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		if conn != nil {
			// Closed but not yet noticed by watch: wait for it.
			select {
			case <-time.After(5 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-t.closed:
				return nil, transports.ErrClosed
			}
			continue
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.closed:
			return nil, transports.ErrClosed
		}
	}
}

// queueArgs builds the queue.declare arguments exactly as kombu does.
func queueArgs(q transports.Queue) (amqp.Table, error) {
	args, err := toTable(q.Arguments)
	if err != nil {
		return nil, err
	}
	if q.MaxPriority > 0 {
		if args == nil {
			args = amqp.Table{}
		}
		args["x-max-priority"] = int32(q.MaxPriority)
	}
	return args, nil
}

// declareOn declares q's exchange (unless it is the default exchange), the
// queue and the binding, with kombu's flags: exchange durable, not
// auto-delete, not internal, no arguments; queue durable/auto-delete as
// given, not exclusive.
func declareOn(ch *amqp.Channel, q transports.Queue) error {
	ex := q.Exchange
	if ex == "" {
		ex = q.Name
	}
	kind := q.ExchangeType
	if kind == "" {
		kind = amqp.ExchangeDirect
	}
	key := q.RoutingKey
	if key == "" {
		key = q.Name
	}
	args, err := queueArgs(q)
	if err != nil {
		return fmt.Errorf("amqp: queue %q arguments: %w", q.Name, err)
	}
	// kombu: Exchange(name) defaults to durable=True; the default exchange
	// ("", amq.*) is never declared.
	if ex != "" && !isReservedExchange(ex) {
		if err := ch.ExchangeDeclare(ex, kind, true, false, false, false, nil); err != nil {
			return fmt.Errorf("amqp: declare exchange %q: %w", ex, err)
		}
	}
	if _, err := ch.QueueDeclare(q.Name, q.Durable, q.AutoDelete, false, false, args); err != nil {
		return fmt.Errorf("amqp: declare queue %q: %w", q.Name, err)
	}
	if ex != "" {
		if err := ch.QueueBind(q.Name, key, ex, false, nil); err != nil {
			return fmt.Errorf("amqp: bind queue %q to %q: %w", q.Name, ex, err)
		}
	}
	return nil
}

func isReservedExchange(name string) bool {
	return len(name) >= 4 && name[:4] == "amq."
}

// Declare declares each queue with its exchange and binding the way kombu
// does (see declareOn) and remembers them for re-declaration after a
// reconnect. Note that transports.Queue has no way to express an exchange
// durability other than kombu's default (durable).
func (t *Transport) Declare(ctx context.Context, qs ...transports.Queue) error {
	return t.withFreshChannel(ctx, func(ch *amqp.Channel) error {
		for _, q := range qs {
			if err := declareOn(ch, q); err != nil {
				return err
			}
			t.remember(q)
		}
		return nil
	})
}

// withFreshChannel runs declarations on a channel of their own (a channel
// error such as PRECONDITION_FAILED closes only that channel), starting
// again on a new connection when the connection was lost meanwhile.
func (t *Transport) withFreshChannel(ctx context.Context, declare func(*amqp.Channel) error) error {
	for {
		conn, err := t.connection(ctx)
		if err != nil {
			return err
		}
		ch, err := conn.Channel()
		if err != nil {
			if conn.IsClosed() {
				continue
			}
			return err
		}
		err = declare(ch)
		ch.Close()
		if err != nil && conn.IsClosed() && ctx.Err() == nil && isConnLoss(err) {
			continue
		}
		return err
	}
}

func isConnLoss(err error) bool {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae.Code == amqp.ConnectionForced || !ae.Server
	}
	return errors.Is(err, amqp.ErrClosed)
}

func (t *Transport) remember(q transports.Queue) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.declIdx[q.Name]; ok {
		t.declared[i] = q
		return
	}
	t.declIdx[q.Name] = len(t.declared)
	t.declared = append(t.declared, q)
}

// declaredQueue returns the declaration of name, if this transport made it.
func (t *Transport) declaredQueue(name string) (transports.Queue, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.declIdx[name]
	if !ok {
		return transports.Queue{}, false
	}
	return t.declared[i], true
}

// publisher returns the confirm-mode publishing channel and its
// connection, opening the channel on the current connection when needed.
// Called with pubMu held.
func (t *Transport) publisher(ctx context.Context) (*amqp.Channel, *amqp.Connection, error) {
	conn, err := t.connection(ctx)
	if err != nil {
		return nil, nil, err
	}
	if t.pub != nil && t.pubConn == conn && !t.pub.IsClosed() {
		return t.pub, conn, nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, conn, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, conn, err
	}
	t.pubClose = ch.NotifyClose(make(chan *amqp.Error, 1))
	if t.opts.Mandatory {
		t.returns = ch.NotifyReturn(make(chan amqp.Return, 1))
	}
	t.pub, t.pubConn = ch, conn
	return ch, conn, nil
}

// Publish sends m to exchange with routingKey and waits for the broker's
// publisher confirm. A nack is ErrNacked; with Options.Mandatory an
// unroutable message is ErrUnroutable. If the connection is lost before the
// confirm arrives the message is published again after the reconnect
// (at-least-once), until ctx is done. A channel-level error (for example a
// missing exchange) is returned, not retried.
func (t *Transport) Publish(ctx context.Context, exchange, routingKey string, m *kombu.Message) error {
	p, err := PublishingFromMessage(m)
	if err != nil {
		return err
	}
	for {
		conn, err := t.publishOnce(ctx, exchange, routingKey, &p)
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-t.closed:
			return transports.ErrClosed
		default:
		}
		if conn == nil || !conn.IsClosed() {
			return err
		}
		t.log.Warn("Publish interrupted by connection loss, retrying", "error", err)
	}
}

func (t *Transport) publishOnce(ctx context.Context, exchange, routingKey string, p *amqp.Publishing) (*amqp.Connection, error) {
	t.pubMu.Lock()
	locked := true
	defer func() {
		if locked {
			t.pubMu.Unlock()
		}
	}()
	ch, conn, err := t.publisher(ctx)
	if err != nil {
		return conn, err
	}
	closeCh, returns := t.pubClose, t.returns
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, routingKey, t.opts.Mandatory, false, *p)
	if err != nil {
		return conn, fmt.Errorf("amqp: publish: %w", err)
	}
	if !t.opts.Mandatory {
		// Confirms are matched by sequence number; other publishers may
		// go ahead while this one waits.
		t.pubMu.Unlock()
		locked = false
	}
	ack, err := dc.WaitContext(ctx)
	if err != nil {
		return conn, err
	}
	if !ack {
		if ch.IsClosed() {
			reason := "channel closed"
			select {
			case e, ok := <-closeCh:
				if ok && e != nil {
					reason = e.Error()
				}
			default:
			}
			return conn, fmt.Errorf("amqp: publish not confirmed: %s", reason)
		}
		return conn, ErrNacked
	}
	if returns != nil {
		select {
		case r := <-returns:
			return conn, fmt.Errorf("%w: %d %s (exchange %q, key %q)", ErrUnroutable, r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey)
		default:
		}
	}
	return conn, nil
}

// Close stops consumers, closes the connection and waits for background
// goroutines. Unsettled deliveries go back to their queues.
func (t *Transport) Close() error {
	var err error
	t.once.Do(func() {
		close(t.closed)
		t.mu.Lock()
		cs := make([]*consumer, 0, len(t.consumers))
		for c := range t.consumers {
			cs = append(cs, c)
		}
		conn := t.conn
		t.mu.Unlock()
		for _, c := range cs {
			c.Close()
		}
		if conn != nil && !conn.IsClosed() {
			err = conn.Close()
		}
		t.wg.Wait()
	})
	return err
}
