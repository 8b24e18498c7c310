package redistransport

import (
	"context"
	"errors"
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
// auto-delete in Celery). A direct exchange (a pidbox reply queue) is
// consumed like kombu's no-ack consumer of a list: the binding, then
// BRPOP on the queue's lists; Close removes the binding and the lists.
func (t *Transport) Subscribe(ctx context.Context, b transports.Broadcast) (transports.Subscription, error) {
	if t.isClosed() {
		return nil, transports.ErrClosed
	}
	typ := b.Exchange.Type
	if typ == "" {
		typ = "fanout"
	}
	t.setExchangeType(b.Exchange.Name, typ)
	if typ == "direct" {
		return t.subscribeDirect(ctx, b)
	}
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

// subscribeDirect consumes b.Queue, bound to a direct exchange, with
// BRPOP and no ack (kombu's no_ack consume, as Celery's Mailbox reads its
// replies).
func (t *Transport) subscribeDirect(ctx context.Context, b transports.Broadcast) (transports.Subscription, error) {
	if b.Queue == "" {
		return nil, errors.New("redistransport: a direct subscription needs a queue")
	}
	rk := b.BindingKey
	if rk == "" {
		rk = b.Queue
	}
	bkey := t.ks.bindingKey(b.Exchange.Name)
	member := t.ks.bindingMember(rk, "", b.Queue)
	if err := t.client.SAdd(ctx, bkey, member).Err(); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(t.ks.stepSuffix))
	for _, suffix := range t.ks.stepSuffix {
		keys = append(keys, t.ks.prefix+b.Queue+suffix)
	}
	s := &directSub{t: t, keys: keys, bkey: bkey, member: member,
		out: make(chan *kombu.Message, 64), done: make(chan struct{})}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

type directSub struct {
	t      *Transport
	keys   []string
	bkey   string
	member string
	out    chan *kombu.Message
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func (s *directSub) Messages() <-chan *kombu.Message { return s.out }

func (s *directSub) run() {
	defer s.wg.Done()
	defer close(s.out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.done
		cancel()
	}()
	for ctx.Err() == nil {
		r, err := s.t.client.BRPop(ctx, time.Second, s.keys...).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.t.log.Warn("Cannot read the reply queue, retrying", "queue", s.keys[0], "error", err)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			continue
		}
		m, err := kombu.DecodeEnvelopeString(r[1])
		if err != nil {
			s.t.log.Warn("Cannot decode a message on a reply queue", "queue", r[0], "error", err)
			continue
		}
		select {
		case s.out <- m:
		case <-ctx.Done():
			return
		}
	}
}

func (s *directSub) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		s.wg.Wait()
		if s.t.isClosed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pipe := s.t.client.TxPipeline()
		pipe.SRem(ctx, s.bkey, s.member)
		pipe.Del(ctx, s.keys...)
		_, err = pipe.Exec(ctx)
	})
	return err
}
