package redistransport

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

var _ transports.Broadcaster = (*Transport)(nil)

// DriverType returns "redis" (kombu's driver_type for this transport).
func (t *Transport) DriverType() string { return "redis" }

// DeclareExchange remembers the exchange type, as kombu's virtual
// exchange_declare does (Redis has no exchange objects). A fanout exchange
// is published to with PUBLISH.
func (t *Transport) DeclareExchange(_ context.Context, ex transports.Exchange) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	typ := ex.Type
	if typ == "" {
		typ = "direct"
	}
	t.setExchangeType(ex.Name, typ)
	return nil
}

// subscribePattern is kombu's _get_subscribe_topic plus the global prefix:
// "<prefix>/{db}.<exchange>[/<binding key with # replaced by *>]". The
// prefix and exchange are glob-escaped; the key keeps its '*' wildcards.
func (ks *keyspace) subscribePattern(exchange, bindingKey string) string {
	p := globEscape(ks.prefix) + "/" + strconv.Itoa(ks.db) + "." + globEscape(exchange)
	if bindingKey != "" {
		p += "/" + strings.ReplaceAll(bindingKey, "#", "*")
	}
	return p
}

var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)

func globEscape(s string) string { return globEscaper.Replace(s) }

// Subscribe consumes a broadcast exchange the way kombu's Redis channel
// does for fanout-bound queues: SADD the binding
// ("<key><sep><sep><queue>" in _kombu.binding.<exchange>) and PSUBSCRIBE
// the exchange's channel pattern. Payloads are kombu JSON envelopes;
// undecodable ones are logged and skipped. go-redis resubscribes after a
// reconnect. Close UNSUBSCRIBEs and removes the binding (the queue is
// auto-delete in Celery).
func (t *Transport) Subscribe(ctx context.Context, b transports.Broadcast) (transports.Subscription, error) {
	if t.isClosed() {
		return nil, transports.ErrClosed
	}
	typ := b.Exchange.Type
	if typ == "" {
		typ = "fanout"
	}
	t.setExchangeType(b.Exchange.Name, typ)
	member := t.ks.bindingMember(b.BindingKey, "", b.Queue)
	bkey := t.ks.bindingKey(b.Exchange.Name)
	if b.Queue != "" {
		if err := t.client.SAdd(ctx, bkey, member).Err(); err != nil {
			return nil, err
		}
	}
	pattern := t.ks.subscribePattern(b.Exchange.Name, b.BindingKey)
	ps := t.client.PSubscribe(ctx, pattern)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, err
	}
	s := &subscription{
		t:       t,
		ps:      ps,
		out:     make(chan *kombu.Message, 64),
		done:    make(chan struct{}),
		bkey:    bkey,
		member:  member,
		hasBind: b.Queue != "",
	}
	s.wg.Add(1)
	go s.run(ps.Channel(redis.WithChannelSize(256)))
	return s, nil
}

type subscription struct {
	t       *Transport
	ps      *redis.PubSub
	out     chan *kombu.Message
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	bkey    string
	member  string
	hasBind bool
}

func (s *subscription) Messages() <-chan *kombu.Message { return s.out }

func (s *subscription) run(in <-chan *redis.Message) {
	defer s.wg.Done()
	defer close(s.out)
	for {
		select {
		case <-s.done:
			return
		case pm, ok := <-in:
			if !ok {
				return
			}
			m, err := kombu.DecodeEnvelopeString(pm.Payload)
			if err != nil {
				s.t.log.Warn("Cannot process event on channel", "channel", pm.Channel, "error", err)
				continue
			}
			select {
			case s.out <- m:
			case <-s.done:
				return
			}
		}
	}
}

func (s *subscription) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.ps.Close()
		s.wg.Wait()
		if s.hasBind {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if e := s.t.client.SRem(ctx, s.bkey, s.member).Err(); e != nil && err == nil && !s.t.isClosed() {
				err = e
			}
		}
	})
	return err
}
