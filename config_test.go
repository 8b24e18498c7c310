package celerity

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/celerity-go/celerity/transports"
	"github.com/celerity-go/celerity/transports/memory"
)

// worker_direct adds the node's own queue once, declared as Celery's
// worker_direct(hostname) declares it, without touching the caller's
// slices.
func TestWorkerDirectConfig(t *testing.T) {
	queues := make([]string, 1, 4)
	queues[0] = "q"
	c := Config{Hostname: "w1@host", Queues: queues, WorkerDirect: true}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if err := c.setDefaults(); err != nil { // twice: still one direct queue
		t.Fatal(err)
	}
	if !slices.Equal(c.Queues, []string{"q", "w1@host.dq2"}) {
		t.Errorf("queues %v", c.Queues)
	}
	if queues[:2][1] != "" {
		t.Errorf("the caller's slice was written: %v", queues[:2])
	}
	want := []transports.Queue{
		{Name: "q", Exchange: "q", ExchangeType: "direct", RoutingKey: "q", Durable: true},
		{Name: "w1@host.dq2", Exchange: "C.dq2", ExchangeType: "direct", RoutingKey: "w1@host", Durable: true},
	}
	if got := c.declarations(); !slices.EqualFunc(got, want, func(a, b transports.Queue) bool {
		return a.Name == b.Name && a.Exchange == b.Exchange && a.ExchangeType == b.ExchangeType &&
			a.RoutingKey == b.RoutingKey && a.Durable == b.Durable
	}) {
		t.Errorf("declarations %+v", got)
	}
}

// The broker's prefetch count: 0 (no limit) for an unlimited window, as
// Celery sets it, and never beyond what basic.qos carries.
func TestBrokerPrefetch(t *testing.T) {
	for _, c := range []struct {
		multiplier, n, want int
	}{
		{4, 8, 8}, {4, 65535, 65535}, {16, 65536, 65535}, {100, 409600, 65535}, {-1, 1 << 16, 0},
	} {
		cfg := Config{PrefetchMultiplier: c.multiplier}
		if got := cfg.brokerPrefetch(c.n); got != c.want {
			t.Errorf("multiplier %d, window %d: %d, want %d", c.multiplier, c.n, got, c.want)
		}
	}
	// inspect stats reports Celery's qos.value: 0 when unlimited.
	w, err := NewWorker(&recTransport{}, nil, Config{PrefetchMultiplier: -1})
	if err != nil {
		t.Fatal(err)
	}
	if p := w.Stats().Prefetch; p != 0 {
		t.Errorf("unlimited prefetch reported as %d", p)
	}
}

// prefetchRecorder reports the prefetch count a worker consumes with.
type prefetchRecorder struct {
	*memory.Transport
	got chan int
}

func (t prefetchRecorder) Consume(ctx context.Context, queues []string, prefetch int) (transports.Consumer, error) {
	t.got <- prefetch
	return t.Transport.Consume(ctx, queues, prefetch)
}

// The worker consumes with the broker's prefetch count: a window of
// 80,000 does not wrap around basic.qos's short, and unlimited is 0.
func TestConsumePrefetchCount(t *testing.T) {
	for multiplier, want := range map[int]int{40000: 65535, -1: 0, 3: 6} {
		tr := prefetchRecorder{Transport: memory.New(), got: make(chan int, 1)}
		w, err := NewWorker(tr, nil, Config{Concurrency: 2, PrefetchMultiplier: multiplier,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx, context.Background()) }()
		if got := <-tr.got; got != want {
			t.Errorf("multiplier %d: consumed with prefetch %d, want %d", multiplier, got, want)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
