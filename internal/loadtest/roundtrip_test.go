package loadtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/handlers"
	"github.com/celerity-go/celerity/internal/celerylog"
	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/resultstore"
	redisstore "github.com/celerity-go/celerity/resultstore/redis"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

// BenchmarkRedisRoundTrip measures one task at a time from a Go client:
// subscribe to the result's channel, LPUSH a tasks.add message as Celery
// publishes it, wait for the result's PUBLISH. "worker" answers with
// celerity's worker (in this process), "bare" with a responder that only
// BRPOPs, decodes and stores the result (no unacked bookkeeping, no
// pipeline), the floor for any worker. It reports p50/p90/p99 in µs.
func BenchmarkRedisRoundTrip(b *testing.B) {
	b.Run("worker", func(b *testing.B) { benchRoundTrip(b, startWorkerResponder) })
	b.Run("bare", func(b *testing.B) { benchRoundTrip(b, startBareResponder) })
}

// responder starts answering tasks.add on queue; the returned func stops it.
type responder func(tb testing.TB, queue string) func()

func benchRoundTrip(b *testing.B, start responder) {
	client := redisOrSkip(b)
	ctx := context.Background()
	const warm = 50
	batch := NewBatch(UniqueQueue(), warm+b.N)
	e := &env{kind: "redis", broker: client, backend: client}
	b.Cleanup(func() { e.cleanup(batch) })
	stop := start(b, batch.Queue)
	defer stop()
	replyTo, origin := clientIdentity()
	ps := client.Subscribe(ctx)
	defer ps.Close()
	var buf []byte
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range batch.IDs {
		m, err := encodeTask(batch, i, replyTo, origin)
		if err != nil {
			b.Fatal(err)
		}
		m.Properties.DeliveryInfo = kombu.DeliveryInfo{Exchange: "", RoutingKey: batch.Queue}
		m.Properties.BodyEncoding = "base64"
		if buf, err = kombu.AppendEnvelope(buf[:0], m); err != nil {
			b.Fatal(err)
		}
		channel := "celery-task-meta-" + batch.IDs[i]
		if err := ps.Subscribe(ctx, channel); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := client.LPush(ctx, batch.Queue, buf).Err(); err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		msg, err := ps.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			b.Fatalf("task %d: %v", i, err)
		}
		dt := time.Since(t0)
		if msg.Channel != channel {
			b.Fatalf("result on %q, want %q", msg.Channel, channel)
		}
		doc, err := resultstore.DecodeMeta([]byte(msg.Payload))
		if err != nil || doc["status"] != "SUCCESS" || doc["result"] != batch.Expected(i) {
			b.Fatalf("task %d: result %v (%v), want SUCCESS %d", i, doc, err, batch.Expected(i))
		}
		if err := ps.Unsubscribe(ctx, channel); err != nil {
			b.Fatal(err)
		}
		if i >= warm {
			samples = append(samples, dt)
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	pct := func(p float64) float64 {
		return float64(samples[min(len(samples)-1, int(p*float64(len(samples))))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.90), "p90-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// startWorkerResponder runs celerity's worker on queue with Redis as
// broker and result backend, at the default settings.
func startWorkerResponder(tb testing.TB, queue string) func() {
	ctx := context.Background()
	logger := slog.New(celerylog.New(io.Discard, slog.LevelWarn))
	tr, err := redistransport.New(ctx, benchRedisURL, redistransport.Options{Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	rb, err := redisstore.New(ctx, benchRedisURL, redisstore.Options{Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	w, err := celerity.NewWorker(tr, rb, celerity.Config{Queues: []string{queue}, Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	if err := handlers.Register(w, logger); err != nil {
		tb.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx, ctx) }()
	return func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			tb.Error(err)
		}
		rb.Close()
		tr.Close()
	}
}

// startBareResponder runs bareRespond, what redisLatencyFloor runs for
// the Python client.
func startBareResponder(tb testing.TB, queue string) func() {
	ctx := context.Background()
	o, _ := redis.ParseURL(benchRedisURL)
	broker := redis.NewClient(o)
	rb, err := redisstore.New(ctx, benchRedisURL, redisstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := kombu.NewRegistry([]string{"json"})
	if err != nil {
		tb.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bareRespond(runCtx, broker, rb, reg, queue) }()
	return func() {
		stop()
		if err := <-done; err != nil {
			tb.Error(err)
		}
		rb.Close()
		broker.Close()
	}
}
