package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/resultstore"
	redisstore "github.com/celerity-go/celerity/resultstore/redis"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

// Ceiling is the broker's own limit for the benchmark's traffic: a bare
// consumer in the bench process drains the same preloaded messages with
// the same prefetch window and acknowledges each one on arrival, doing no
// work and writing no result (see AMQPCeiling and RedisCeiling). No
// worker can beat it, so it tells whether a throughput target is
// reachable on this machine at all.
type Ceiling struct {
	Kind       string  `json:"kind"`
	Prefetch   int     `json:"prefetch,omitempty"`
	Global     bool    `json:"global_qos,omitempty"`
	N          int     `json:"n,omitempty"`
	MsgsPerSec float64 `json:"msgs_per_sec,omitempty"`
	// Latency is the Python client's round trips against a bare
	// responder (Redis only; see redisLatencyFloor).
	Latency *Latency `json:"latency_floor,omitempty"`
}

// AMQPCeiling measures Ceiling on RabbitMQ: basic.qos(prefetch, global)
// as Celery 5.2 sets it on RabbitMQ (global), basic.consume, one basic.ack
// per message as it arrives.
func AMQPCeiling(ctx context.Context, url string, n, prefetch int) (*Ceiling, error) {
	b := NewBatch(UniqueQueue(), n)
	if err := PreloadAMQP(ctx, url, b); err != nil {
		return nil, err
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	defer func() {
		_, _ = ch.QueueDelete(b.Queue, false, false, false)
		_ = ch.ExchangeDelete(b.Queue, false, false)
	}()
	if err := ch.Qos(prefetch, 0, true); err != nil {
		return nil, err
	}
	ds, err := ch.Consume(b.Queue, "", false, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	got := 0
	for got < n {
		select {
		case d, ok := <-ds:
			if !ok {
				return nil, fmt.Errorf("ceiling: consumer closed after %d of %d", got, n)
			}
			if err := d.Ack(false); err != nil {
				return nil, err
			}
			got++
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &Ceiling{Kind: "amqp", Prefetch: prefetch, Global: true, N: n,
		MsgsPerSec: float64(n) / time.Since(start).Seconds()}, nil
}

// RedisCeiling measures Ceiling on Redis: a bare consumer with the Go
// worker's own Redis protocol (the pop script records every message in
// unacked as kombu does; the next pop carries the acks) drains the
// preloaded messages with two fetches of half the prefetch window in
// flight, as the worker keeps them, and acknowledges each batch on
// arrival. It decodes no task, runs nothing and writes no result, so no
// worker speaking this protocol at this window beats it.
func RedisCeiling(ctx context.Context, url string, n, prefetch int) (*Ceiling, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(o)
	defer client.Close()
	b := NewBatch(UniqueQueue(), n)
	if err := PreloadRedis(ctx, client, b); err != nil {
		return nil, err
	}
	defer (&env{kind: "redis", broker: client}).cleanup(b)
	tr, err := redistransport.New(ctx, url, redistransport.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	cons, err := tr.ConsumeQueues([]string{b.Queue})
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			cons.Close()
		}
	}()
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		got     atomic.Int64
		elapsed atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		ferr    error
	)
	start := time.Now()
	for range cons.FetchConcurrency() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for got.Load() < int64(n) {
				ds, err := cons.Fetch(fctx, max(1, prefetch/cons.FetchConcurrency()))
				if err != nil {
					if fctx.Err() == nil {
						errOnce.Do(func() { ferr = err; stop() })
					}
					return
				}
				cons.AckAsync(ds...)
				if got.Add(int64(len(ds))) >= int64(n) {
					// The other fetch waits for a message that will not
					// come: the drain ends here.
					elapsed.Store(int64(time.Since(start)))
					stop()
				}
			}
		}()
	}
	wg.Wait()
	if ferr != nil {
		return nil, ferr
	}
	if got.Load() < int64(n) {
		return nil, fmt.Errorf("ceiling: drained %d of %d: %w", got.Load(), n, ctx.Err())
	}
	// Close sends the acks no pop carried; then no message of the batch
	// may be left in unacked, or the drain skipped work a worker must do.
	closed = true
	if err := cons.Close(); err != nil {
		return nil, err
	}
	fetched, settled, err := redisDrained(ctx, client, b)
	if err != nil {
		return nil, err
	}
	if fetched != n || !settled {
		return nil, fmt.Errorf("ceiling: %d of %d messages fetched, all settled: %v", fetched, n, settled)
	}
	return &Ceiling{Kind: "redis", Prefetch: prefetch, N: n,
		MsgsPerSec: float64(n) / time.Duration(elapsed.Load()).Seconds()}, nil
}

// goPrefetch is the Go worker's prefetch window for cfg: concurrency
// (default: CPUs) × multiplier 4, unless overridden in GoArgs.
func goPrefetch(cfg Config) int {
	c, m := cfg.Concurrency, 4
	if c == 0 {
		c = runtime.NumCPU()
	}
	for i := 0; i+1 < len(cfg.GoArgs); i++ {
		var v int
		if _, err := fmt.Sscan(cfg.GoArgs[i+1], &v); err != nil {
			continue
		}
		switch cfg.GoArgs[i] {
		case "-c", "--concurrency":
			c = v
		case "--prefetch-multiplier":
			m = v
		}
	}
	return c * m
}

// redisLatencyFloor runs the Python client's round trips against a bare
// responder in the bench process: BRPOP the queue, decode the task, write
// the SUCCESS result (SETEX + PUBLISH, as a worker does) at once; no
// unacked bookkeeping, no pipeline. No worker can answer faster, so its
// p50/p99 tell how low a worker's round trip can go on this machine.
func redisLatencyFloor(ctx context.Context, cfg Config, pydir string) (*Latency, error) {
	bo, err := redis.ParseURL(cfg.Broker)
	if err != nil {
		return nil, err
	}
	broker := redis.NewClient(bo)
	defer broker.Close()
	rb, err := redisstore.New(ctx, cfg.Backend, redisstore.Options{})
	if err != nil {
		return nil, err
	}
	defer rb.Close()
	reg, err := kombu.NewRegistry([]string{"json"})
	if err != nil {
		return nil, err
	}
	queue := UniqueQueue()
	defer broker.Del(context.Background(), queue, "_kombu.binding."+queue)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- bareRespond(rctx, broker, rb, reg, queue) }()
	l, err := pythonLatency(ctx, cfg, queue, pydir)
	stop()
	if rerr := <-errc; rerr != nil {
		err = errors.Join(fmt.Errorf("bare responder: %w", rerr), err)
	}
	return l, err
}

// bareRespond answers tasks.add on queue until ctx is done with the least
// a worker can do: BRPOP, decode the task, store its SUCCESS (SETEX +
// PUBLISH). It returns nil once ctx is done.
func bareRespond(ctx context.Context, broker *redis.Client, rb *redisstore.Backend, reg *kombu.Registry, queue string) error {
	for ctx.Err() == nil {
		kv, err := broker.BRPop(ctx, time.Second, queue).Result()
		if errors.Is(err, redis.Nil) || ctx.Err() != nil {
			continue
		}
		if err != nil {
			return err
		}
		m, err := kombu.DecodeEnvelope([]byte(kv[1]))
		if err != nil {
			return err
		}
		t, err := protocolv2.Decode(m, reg)
		if err != nil {
			return err
		}
		var sum int64
		for _, a := range t.Args {
			v, _ := a.(int64)
			sum += v
		}
		meta := &resultstore.Meta{TaskID: t.ID, Status: resultstore.Success, Result: sum, DateDone: time.Now().UTC()}
		if err := rb.Store(ctx, meta); err != nil {
			return err
		}
	}
	return nil
}
