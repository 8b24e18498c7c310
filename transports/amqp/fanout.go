package amqptransport

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
	amqp "github.com/rabbitmq/amqp091-go"
)

var _ transports.Broadcaster = (*Transport)(nil)

// DriverType returns "amqp" (kombu's driver_type for py-amqp).
func (t *Transport) DriverType() string { return "amqp" }

// DeclareExchange declares ex with its own durability (not auto-delete,
// not internal, no arguments), as kombu does for Celery's pidbox and
// event exchanges. Declaring an existing exchange with other flags is a
// channel error (PRECONDITION_FAILED), returned as is.
func (t *Transport) DeclareExchange(ctx context.Context, ex transports.Exchange) error {
	return t.withFreshChannel(ctx, func(ch *amqp.Channel) error { return declareExchangeOn(ch, ex) })
}

func declareExchangeOn(ch *amqp.Channel, ex transports.Exchange) error {
	kind := ex.Type
	if kind == "" {
		kind = amqp.ExchangeDirect
	}
	if ex.Name == "" || isReservedExchange(ex.Name) {
		return nil
	}
	if err := ch.ExchangeDeclare(ex.Name, kind, ex.Durable, false, false, false, nil); err != nil {
		return fmt.Errorf("amqp: declare exchange %q: %w", ex.Name, err)
	}
	return nil
}

// Subscribe consumes a broadcast exchange the way kombu's pidbox and event
// receivers do: declare the exchange, declare b.Queue non-durable,
// auto-delete, not exclusive, with b.QueueArguments (a server-named queue
// when b.Queue is ""), bind it with b.BindingKey and basic.consume with
// no_ack. After a channel or connection loss everything is declared again
// and consumption resumes; messages published meanwhile are lost.
func (t *Transport) Subscribe(ctx context.Context, b transports.Broadcast) (transports.Subscription, error) {
	select {
	case <-t.closed:
		return nil, transports.ErrClosed
	default:
	}
	args, err := toTable(b.QueueArguments)
	if err != nil {
		return nil, fmt.Errorf("amqp: queue %q arguments: %w", b.Queue, err)
	}
	s := &broadcastSub{
		t:      t,
		b:      b,
		args:   args,
		out:    make(chan *kombu.Message, 64),
		done:   make(chan struct{}),
		subErr: make(chan error, 1),
	}
	s.wg.Add(1)
	go s.run()
	select {
	case err := <-s.subErr:
		if err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
}

type broadcastSub struct {
	t      *Transport
	b      transports.Broadcast
	args   amqp.Table
	out    chan *kombu.Message
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	subErr chan error

	mu sync.Mutex
	ch *amqp.Channel
}

func (s *broadcastSub) Messages() <-chan *kombu.Message { return s.out }

func (s *broadcastSub) run() {
	defer s.wg.Done()
	defer close(s.out)
	first := true
	report := func(err error) {
		if first {
			first = false
			s.subErr <- err
		}
	}
	delay := s.t.opts.ReconnectMin
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-s.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		conn, err := s.t.connection(ctx)
		cancel()
		if err != nil {
			report(err)
			return
		}
		ch, dc, err := s.subscribe(conn)
		if err != nil {
			if first && !conn.IsClosed() {
				report(err)
				return
			}
			s.t.log.Error("Cannot subscribe, retrying", "exchange", s.b.Exchange.Name, "queue", s.b.Queue, "error", err)
			select {
			case <-s.done:
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, s.t.opts.ReconnectMax)
			continue
		}
		delay = s.t.opts.ReconnectMin
		if !first {
			s.t.log.Info("Broadcast subscription restored", "exchange", s.b.Exchange.Name, "queue", s.b.Queue)
		}
		report(nil)
		s.mu.Lock()
		s.ch = ch
		s.mu.Unlock()
		stop := s.forward(dc)
		s.mu.Lock()
		s.ch = nil
		s.mu.Unlock()
		ch.Close()
		if stop {
			return
		}
		s.t.log.Warn("Broadcast channel lost, resubscribing", "exchange", s.b.Exchange.Name, "queue", s.b.Queue)
	}
}

func (s *broadcastSub) subscribe(conn *amqp.Connection) (*amqp.Channel, <-chan amqp.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*amqp.Channel, <-chan amqp.Delivery, error) {
		ch.Close()
		return nil, nil, err
	}
	if err := declareExchangeOn(ch, s.b.Exchange); err != nil {
		return fail(err)
	}
	q, err := ch.QueueDeclare(s.b.Queue, false, true, false, false, s.args)
	if err != nil {
		return fail(fmt.Errorf("amqp: declare queue %q: %w", s.b.Queue, err))
	}
	if err := ch.QueueBind(q.Name, s.b.BindingKey, s.b.Exchange.Name, false, nil); err != nil {
		return fail(fmt.Errorf("amqp: bind queue %q to %q: %w", q.Name, s.b.Exchange.Name, err))
	}
	dc, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		return fail(fmt.Errorf("amqp: consume %q: %w", q.Name, err))
	}
	return ch, dc, nil
}

// forward passes deliveries on until the channel dies (false) or the
// subscription is closed (true).
func (s *broadcastSub) forward(dc <-chan amqp.Delivery) bool {
	for {
		select {
		case <-s.done:
			return true
		case d, ok := <-dc:
			if !ok {
				select {
				case <-s.done:
					return true
				default:
					return false
				}
			}
			m := MessageFromDelivery(&d)
			select {
			case s.out <- m:
			case <-s.done:
				return true
			}
		}
	}
}

// Close cancels the consumer and closes its channel; the auto-delete queue
// then disappears.
func (s *broadcastSub) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		ch := s.ch
		s.mu.Unlock()
		if ch != nil {
			_ = ch.Close()
		}
		s.wg.Wait()
	})
	return nil
}
