package loadtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
	amqptransport "github.com/celerity-go/celerity/transports/amqp"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

// TaskName is the task every preloaded message calls.
const TaskName = "tasks.add"

// Batch is a set of preloaded tasks.add messages: message i calls
// tasks.add(i, i+1) with task id IDs[i].
type Batch struct {
	Queue string
	IDs   []string
	Tags  []string // Redis delivery tags, in the same order (nil on AMQP)

	watcher *resultWatcher
}

// Expected returns the result of message i.
func (b *Batch) Expected(i int) int64 { return int64(2*i + 1) }

// NewBatch returns n fresh task ids for queue.
func NewBatch(queue string, n int) *Batch {
	b := &Batch{Queue: queue, IDs: make([]string, n)}
	for i := range b.IDs {
		b.IDs[i] = protocolv2.NewID()
	}
	return b
}

// brokerKind tells redis from amqp by the URL scheme.
func brokerKind(url string) (string, error) {
	s, _, ok := strings.Cut(url, "://")
	if !ok {
		return "", fmt.Errorf("broker URL %q has no scheme", url)
	}
	switch strings.ToLower(s) {
	case "redis", "rediss":
		return "redis", nil
	case "amqp", "amqps", "pyamqp":
		return "amqp", nil
	}
	return "", fmt.Errorf("unsupported broker %q (want redis:// or amqp://)", url)
}

// encodeTask builds message i of b the way Celery 5.2's send_task does
// (same headers, properties and JSON body; reply_to is the client's oid).
func encodeTask(b *Batch, i int, replyTo, origin string) (*kombu.Message, error) {
	t := &protocolv2.Task{
		ID: b.IDs[i], Name: TaskName,
		Args:   []any{int64(i), int64(i + 1)},
		Kwargs: map[string]any{},
		Origin: origin,
	}
	return protocolv2.Encode(t, protocolv2.EncodeOptions{ReplyTo: replyTo, RoutingKey: b.Queue})
}

func clientIdentity() (replyTo, origin string) {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return protocolv2.NewID(), fmt.Sprintf("gen%d@%s", os.Getpid(), host)
}

// PreloadRedis LPUSHes the batch onto its queue in pipelined chunks, with
// the envelope kombu's Redis transport writes (body base64, fresh
// delivery_tag, delivery_info {exchange "", routing_key queue}), and
// records the queue's binding like a Python publisher declaring the queue.
func PreloadRedis(ctx context.Context, client *redis.Client, b *Batch) error {
	replyTo, origin := clientIdentity()
	b.Tags = make([]string, len(b.IDs))
	// Celery declares the queue (exchange = queue name, direct) before the
	// first publish.
	member := b.Queue + redistransport.DefaultSep + redistransport.DefaultSep + b.Queue
	if err := client.SAdd(ctx, "_kombu.binding."+b.Queue, member).Err(); err != nil {
		return fmt.Errorf("preload: declare: %w", err)
	}
	const chunk = 1000
	var buf []byte
	for start := 0; start < len(b.IDs); start += chunk {
		end := min(start+chunk, len(b.IDs))
		pipe := client.Pipeline()
		for i := start; i < end; i++ {
			m, err := encodeTask(b, i, replyTo, origin)
			if err != nil {
				return err
			}
			m.Properties.DeliveryInfo = kombu.DeliveryInfo{Exchange: "", RoutingKey: b.Queue}
			m.Properties.BodyEncoding = "base64"
			b.Tags[i] = m.Properties.DeliveryTag
			if buf, err = kombu.AppendEnvelope(buf[:0], m); err != nil {
				return err
			}
			pipe.LPush(ctx, b.Queue, string(buf))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("preload: lpush: %w", err)
		}
	}
	return nil
}

// DeclareAMQP declares the queue the way Celery does for send_task(queue=q):
// a durable direct exchange q and a durable queue q bound with key q.
func DeclareAMQP(ch *amqp.Channel, queue string) error {
	if err := ch.ExchangeDeclare(queue, "direct", true, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return err
	}
	return ch.QueueBind(queue, queue, queue, false, nil)
}

// PreloadAMQP publishes the batch to the default exchange with routing key
// queue (as Celery 5.2 does), then waits until the broker counts every
// message in the queue.
func PreloadAMQP(ctx context.Context, url string, b *Batch) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	defer ch.Close()
	if err := DeclareAMQP(ch, b.Queue); err != nil {
		return fmt.Errorf("preload: declare: %w", err)
	}
	replyTo, origin := clientIdentity()
	for i := range b.IDs {
		m, err := encodeTask(b, i, replyTo, origin)
		if err != nil {
			return err
		}
		p, err := amqptransport.PublishingFromMessage(m)
		if err != nil {
			return err
		}
		if err := ch.PublishWithContext(ctx, "", b.Queue, false, false, p); err != nil {
			return fmt.Errorf("preload: publish: %w", err)
		}
	}
	return waitAMQPCount(ctx, ch, b.Queue, len(b.IDs))
}

func waitAMQPCount(ctx context.Context, ch *amqp.Channel, queue string, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("preload: inspect queue: %w", err)
		}
		if q.Messages >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("preload: queue %s holds %d of %d messages", queue, q.Messages, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// errNoPython is returned when a Python step is asked for but
// /usr/bin/python3 has no celery.
var errNoPython = errors.New("python celery is not available")
