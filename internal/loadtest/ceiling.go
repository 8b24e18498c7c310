package loadtest

import (
	"context"
	"fmt"
	"runtime"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Ceiling is the broker's own limit for the benchmark's traffic: a bare
// consumer in the bench process drains the same preloaded messages with
// the same prefetch window and acknowledges each one on arrival, doing no
// work and writing no result. No worker can beat it, so it tells whether
// a throughput target is reachable on this machine at all.
type Ceiling struct {
	Kind       string  `json:"kind"`
	Prefetch   int     `json:"prefetch"`
	Global     bool    `json:"global_qos"`
	N          int     `json:"n"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
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
