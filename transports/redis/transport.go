// Package redistransport is the kombu Redis transport for celerity: it
// reads and writes the same keys, in the same order and shapes, as
// kombu's redis.py and virtual/base.py (kombu 5.2–5.6), so Go and Python
// workers can share queues, the unacked structures and the visibility
// sweep.
//
// One deliberate improvement over kombu: a message popped without
// blocking is recorded in "unacked"/"unacked_index" by the same Lua script
// that pops it, so a crash between pop and record cannot lose it. Only
// the blocking BRPOP fallback (used when every queue was empty) has
// kombu's pop-then-record window; such a message is handed out while its
// record is on the way (an idle worker starts the task a round trip
// sooner), every settlement of it waits for the record, and a record that
// fails is retried while the message is held in memory.
//
// Restores follow kombu 5.4+: a restored message goes back into its
// priority sub-list (kombu ≤ 5.3 used the plain queue key; both are read
// by every kombu version because BRPOP covers all sub-lists).
package redistransport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

// Transport is a connection to a Redis broker used the kombu way.
type Transport struct {
	client    redis.UniversalClient
	ownClient bool
	opts      Options
	ks        *keyspace
	log       *slog.Logger

	mu        sync.Mutex
	exchanges map[string]string // exchange -> type, as declared here
	closed    bool
	consumers map[*Consumer]struct{}

	bufPool sync.Pool
}

var _ transports.Transport = (*Transport)(nil)

// New connects to the broker at url (see ParseURL) and checks the
// connection with PING.
func New(ctx context.Context, url string, opts Options) (*Transport, error) {
	ro, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	if opts.TLSConfig != nil {
		ro.TLSConfig = opts.TLSConfig
	}
	ro.ClientName = opts.ClientName
	client := redis.NewClient(ro)
	t, err := NewWithClient(ctx, client, ro.DB, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	t.ownClient = true
	return t, nil
}

// NewWithClient uses an existing client; db is the database number the
// client talks to (it names fanout channels, "/{db}.<exchange>"). Close
// does not close a client passed here.
func NewWithClient(ctx context.Context, client redis.UniversalClient, db int, opts Options) (*Transport, error) {
	opts = opts.withDefaults()
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redistransport: connect: %w", err)
	}
	for _, s := range []*redis.Script{popScript, recordScript, restoreScript, unlockScript} {
		if err := s.Load(ctx, client).Err(); err != nil {
			return nil, fmt.Errorf("redistransport: load script: %w", err)
		}
	}
	return &Transport{
		client:    client,
		opts:      opts,
		ks:        newKeyspace(opts, db),
		log:       opts.Logger,
		exchanges: map[string]string{},
		consumers: map[*Consumer]struct{}{},
	}, nil
}

// Client returns the underlying go-redis client.
func (t *Transport) Client() redis.UniversalClient { return t.client }

// Options returns the effective options (defaults filled in).
func (t *Transport) Options() Options { return t.opts }

// QueueKey returns the prefixed list key kombu uses for queue at the
// given priority (e.g. "q\x06\x163" for priority 4).
func (t *Transport) QueueKey(queue string, priority int) string {
	return t.ks.key(t.ks.queueKey(queue, clampPriority(priority)))
}

// Declare writes the bindings kombu writes for each queue:
// SADD _kombu.binding.<exchange> "<routing_key><sep><pattern><sep><queue>"
// (pattern is the regex kombu derives for topic exchanges, else empty).
// It also remembers the exchange type for Publish and restores, as kombu
// keeps it in process memory (Redis has no exchange objects; unknown
// exchanges are direct). A Queue with an empty Name declares only the
// exchange type, e.g. {Exchange: "celeryev", ExchangeType: "fanout"}.
func (t *Transport) Declare(ctx context.Context, qs ...transports.Queue) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	pipe := t.client.Pipeline()
	n := 0
	for _, q := range qs {
		ex, typ, rk := q.Exchange, q.ExchangeType, q.RoutingKey
		if q.Name == "" {
			if ex != "" && typ != "" {
				t.setExchangeType(ex, typ)
			}
			continue
		}
		if ex == "" {
			ex = q.Name
		}
		if typ == "" {
			typ = "direct"
		}
		if rk == "" && typ != "fanout" {
			rk = q.Name
		}
		t.setExchangeType(ex, typ)
		pattern := ""
		if typ == "topic" {
			pattern = topicPattern(rk)
		}
		if typ == "fanout" {
			// kombu stores the key as bound; "#" becomes "*" only in the
			// subscription pattern.
			pattern = ""
		}
		pipe.SAdd(ctx, t.ks.bindingKey(ex), t.ks.bindingMember(rk, pattern, q.Name))
		n++
	}
	if n == 0 {
		return nil
	}
	_, err := pipe.Exec(ctx)
	return err
}

func (t *Transport) setExchangeType(ex, typ string) {
	t.mu.Lock()
	t.exchanges[ex] = typ
	t.mu.Unlock()
}

func (t *Transport) exchangeType(ex string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if typ, ok := t.exchanges[ex]; ok {
		return typ
	}
	return "direct"
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

func (t *Transport) getBuf() *[]byte {
	if b, ok := t.bufPool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 1024)
	return &b
}

func (t *Transport) putBuf(b *[]byte) {
	if cap(*b) <= 1<<20 {
		*b = (*b)[:0]
		t.bufPool.Put(b)
	}
}

// Publish sends m the way kombu's basic_publish does. The envelope gets
// properties.delivery_tag (a fresh uuid4 unless m already carries one),
// delivery_info {exchange, routing_key}, body_encoding "base64" and the
// priority; m itself is not modified. The default exchange "" LPUSHes to
// the queue named by routingKey (its priority sub-list); a named exchange
// is routed through its _kombu.binding set (direct: equal key, topic: the
// stored pattern), and a fanout exchange PUBLISHes on
// "/{db}.<exchange>[/<routing_key>]". Messages that match no binding are
// dropped, as kombu does (with a warning).
func (t *Transport) Publish(ctx context.Context, exchange, routingKey string, m *kombu.Message) error {
	if t.isClosed() {
		return transports.ErrClosed
	}
	msg := *m
	props := &msg.Properties
	if props.DeliveryTag == "" {
		props.DeliveryTag = newUUID4()
	}
	props.DeliveryInfo = kombu.DeliveryInfo{Exchange: exchange, RoutingKey: routingKey}
	props.BodyEncoding = "base64"
	bp := t.getBuf()
	defer t.putBuf(bp)
	data, err := kombu.AppendEnvelope((*bp)[:0], &msg)
	if err != nil {
		return err
	}
	*bp = data
	pri := clampPriority(props.Priority)
	if exchange == "" {
		return t.client.LPush(ctx, t.ks.key(t.ks.queueKey(routingKey, pri)), data).Err()
	}
	typ := t.exchangeType(exchange)
	if typ == "fanout" {
		return t.client.Publish(ctx, t.ks.fanoutChannel(exchange, routingKey), data).Err()
	}
	queues, err := t.lookup(ctx, typ, exchange, routingKey)
	if err != nil {
		return err
	}
	if len(queues) == 0 {
		t.log.Warn("message could not be delivered: no queue bound", "exchange", exchange, "routing_key", routingKey)
		return nil
	}
	if len(queues) == 1 {
		return t.client.LPush(ctx, t.ks.key(t.ks.queueKey(queues[0], pri)), data).Err()
	}
	pipe := t.client.Pipeline()
	for _, q := range queues {
		pipe.LPush(ctx, t.ks.key(t.ks.queueKey(q, pri)), data)
	}
	_, err = pipe.Exec(ctx)
	return err
}

// lookup is kombu's Channel._lookup for a named exchange.
func (t *Transport) lookup(ctx context.Context, typ, exchange, routingKey string) ([]string, error) {
	members, err := t.client.SMembers(ctx, t.ks.bindingKey(exchange)).Result()
	if err != nil {
		return nil, err
	}
	table := make([]binding, 0, len(members))
	for _, mb := range members {
		if b, ok := t.ks.parseBinding(mb); ok {
			table = append(table, b)
		}
	}
	qs := route(typ, table, routingKey)
	if typ == "topic" {
		// TopicExchange.deliver skips empty queue names.
		out := qs[:0]
		for _, q := range qs {
			if q != "" {
				out = append(out, q)
			}
		}
		qs = out
	}
	return qs, nil
}

// destinations resolves where a restored message goes (kombu's _lookup):
// the routing key itself on the default exchange, else the bound queues.
func (t *Transport) destinations(ctx context.Context, cache map[string][]string, exchange, routingKey string) ([]string, error) {
	if exchange == "" {
		if routingKey == "" {
			return nil, nil
		}
		return []string{routingKey}, nil
	}
	ck := exchange + "\x00" + routingKey
	if qs, ok := cache[ck]; ok {
		return qs, nil
	}
	qs, err := t.lookup(ctx, t.exchangeType(exchange), exchange, routingKey)
	if err != nil {
		return nil, err
	}
	cache[ck] = qs
	return qs, nil
}

// restoreMode selects the push direction and payload edit of a restore.
type restoreMode int

const (
	// restoreHead: RPUSH with redelivered flags (restore, visibility sweep).
	restoreHead restoreMode = iota
	// restoreTail: LPUSH with redelivered flags (reject with requeue).
	restoreTail
)

// restoreTags is kombu's restore_by_tag for many tags: read the entries,
// compute payloads and destinations, then one CAS script per tag in a
// single pipeline. Tags processed in order, so with RPUSH the last tag
// ends up at the head. It returns how many entries were pushed back.
func (t *Transport) restoreTags(ctx context.Context, tags []string, mode restoreMode) (int, error) {
	restored := 0
	cache := map[string][]string{}
	pending := tags
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == 10 {
			return restored, fmt.Errorf("redistransport: restore: %d entries kept changing", len(pending))
		}
		vals, err := t.client.HMGet(ctx, t.ks.key(t.opts.UnackedKey), pending...).Result()
		if err != nil {
			return restored, err
		}
		pipe := t.client.Pipeline()
		cmds := make([]*redis.Cmd, len(pending))
		for i, tag := range pending {
			cur, _ := vals[i].(string)
			keys := []string{t.ks.key(t.opts.UnackedKey), t.ks.key(t.opts.UnackedIndexKey)}
			payload := ""
			if cur != "" {
				env, ex, rk, err := parseUnackedValue([]byte(cur))
				if err != nil {
					t.log.Error("could not restore message: bad unacked entry", "delivery_tag", tag, "error", err)
				} else {
					marked, err := markRedelivered(env)
					if err != nil {
						t.log.Error("could not restore message: bad envelope", "delivery_tag", tag, "error", err)
						marked = env
					}
					payload = string(marked)
					qs, err := t.destinations(ctx, cache, ex, rk)
					if err != nil {
						return restored, err
					}
					if len(qs) == 0 {
						t.log.Warn("could not restore message: no queue bound", "delivery_tag", tag, "exchange", ex, "routing_key", rk)
					}
					pri := envelopePriority(env)
					for _, q := range qs {
						keys = append(keys, t.ks.key(t.ks.queueKey(q, pri)))
					}
				}
			}
			dir := "R"
			if mode == restoreTail {
				dir = "L"
			}
			cmds[i] = restoreScript.EvalSha(ctx, pipe, keys, tag, cur, payload, dir)
		}
		if _, err := pipe.Exec(ctx); err != nil && !isNoScript(err) {
			return restored, err
		} else if err != nil {
			if err := restoreScript.Load(ctx, t.client).Err(); err != nil {
				return restored, err
			}
			continue
		}
		var again []string
		for i, c := range cmds {
			switch n, _ := c.Int(); n {
			case 1:
				restored++
			case -1:
				again = append(again, pending[i])
			}
		}
		pending = again
	}
	return restored, nil
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// RestoreVisible runs kombu's QoS.restore_visible once: take
// unacked_mutex (SET NX PX, like redis-py's Lock), re-queue (RPUSH, with
// the redelivered flags) every entry of unacked_index older than the
// visibility timeout, and release the mutex with compare-and-delete. It
// returns the number of messages restored; 0 with a nil error when
// another process holds the mutex.
func (t *Transport) RestoreVisible(ctx context.Context) (int, error) {
	mutex := t.ks.key(t.opts.UnackedMutexKey)
	token := newToken()
	ok, err := t.client.SetNX(ctx, mutex, token, t.opts.UnackedMutexExpire).Result()
	unsure := err != nil
	if err == nil && !ok {
		// The client sends a command again when a broken connection lost
		// its reply; if the first SET NX was applied, the repeat finds the
		// mutex set by ourselves. Only our token says so.
		cur, gerr := t.client.Get(ctx, mutex).Result()
		ok = gerr == nil && cur == token
		if gerr != nil && !errors.Is(gerr, redis.Nil) {
			unsure, err = true, gerr
		}
	}
	if ok || unsure {
		// Release even if ctx is done, so the mutex does not linger until
		// unacked_mutex_expire, which would stop every process's sweep.
		// When a failure leaves it unknown whether the mutex is ours, the
		// release deletes it only if it holds our token.
		defer t.releaseMutex(context.WithoutCancel(ctx), mutex, token)
	}
	if !ok {
		return 0, err
	}
	ceil := float64(time.Now().UnixNano())/1e9 - t.opts.VisibilityTimeout.Seconds()
	by := &redis.ZRangeBy{Max: strconv.FormatFloat(ceil, 'f', -1, 64), Min: "0"}
	if t.opts.UnackedRestoreLimit > 0 {
		by.Count = int64(t.opts.UnackedRestoreLimit)
	}
	zs, err := t.client.ZRevRangeByScoreWithScores(ctx, t.ks.key(t.opts.UnackedIndexKey), by).Result()
	if err != nil || len(zs) == 0 {
		return 0, err
	}
	tags := make([]string, len(zs))
	for i, z := range zs {
		tags[i], _ = z.Member.(string)
	}
	n, err := t.restoreTags(ctx, tags, restoreHead)
	if n > 0 {
		t.log.Info("restored messages past the visibility timeout", "count", n)
	}
	return n, err
}

// releaseMutex deletes the sweep mutex if it still holds token, trying a
// few times within 5 s: a connection broken under the release must not
// leave the mutex to expire on its own.
func (t *Transport) releaseMutex(ctx context.Context, mutex, token string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	wait := 10 * time.Millisecond
	for {
		err := unlockScript.Run(ctx, t.client, []string{mutex}, token).Err()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.log.Warn("could not release unacked mutex", "error", err)
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// Close closes the consumers still open and, when the transport dialed
// it, the client.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	cs := make([]*Consumer, 0, len(t.consumers))
	for c := range t.consumers {
		cs = append(cs, c)
	}
	t.mu.Unlock()
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	if t.ownClient {
		errs = append(errs, t.client.Close())
	}
	return errors.Join(errs...)
}
