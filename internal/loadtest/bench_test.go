package loadtest

import (
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/handlers"
	"github.com/celerity-go/celerity/internal/celerylog"
	redisstore "github.com/celerity-go/celerity/resultstore/redis"
	"github.com/celerity-go/celerity/transports"
	amqptransport "github.com/celerity-go/celerity/transports/amqp"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

// benchRedisURL is the Redis the benchmarks use: BENCH_REDIS_URL, by
// default the local one (another instance, e.g. one under callgrind, lets
// Redis's own cost per task be counted).
var benchRedisURL = cmp.Or(os.Getenv("BENCH_REDIS_URL"), "redis://127.0.0.1:6379/0")

// redisOrSkip connects to the test Redis; skips (fails under CI=true)
// when it is not there.
func redisOrSkip(tb testing.TB) *redis.Client {
	tb.Helper()
	o, _ := redis.ParseURL(benchRedisURL)
	c := redis.NewClient(o)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis: %v", err)
		}
		tb.Skipf("redis not reachable: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkRedisWorkerThroughput runs celerity's worker in-process on the
// real Redis (broker and result backend) over b.N preloaded tasks.add
// messages, as the celerity binary would (WARNING log level), and reports
// tasks/s from the worker's start to the last stored result. Use
// -benchtime=20000x for a steady-state number and -cpuprofile to profile
// the worker with the preload included, or BENCH_CPUPROFILE=file to
// profile the drain alone. BENCH_CONCURRENCY and BENCH_PREFETCH_MULTIPLIER override
// the worker's defaults.
func BenchmarkRedisWorkerThroughput(b *testing.B) { benchWorker(b, true) }

// BenchmarkRedisWorkerThroughputNoResults is the same with results off:
// until every message is acknowledged.
func BenchmarkRedisWorkerThroughputNoResults(b *testing.B) { benchWorker(b, false) }

// BenchmarkAMQPWorkerThroughput is BenchmarkRedisWorkerThroughput with
// RabbitMQ (AMQP_URL, default the local guest account) as the broker and
// Redis for results.
func BenchmarkAMQPWorkerThroughput(b *testing.B) { benchWorkerOn(b, "amqp", true) }

// BenchmarkAMQPWorkerThroughputNoResults is BenchmarkAMQPWorkerThroughput
// with results off: until every message is acknowledged.
func BenchmarkAMQPWorkerThroughputNoResults(b *testing.B) { benchWorkerOn(b, "amqp", false) }

func benchWorker(b *testing.B, results bool) { benchWorkerOn(b, "redis", results) }

func benchWorkerOn(b *testing.B, kind string, results bool) {
	client := redisOrSkip(b)
	ctx := context.Background()
	batch := NewBatch(UniqueQueue(), b.N)
	e := &env{kind: kind, broker: client}
	if results {
		e.backend = client
	}
	logger := slog.New(celerylog.New(io.Discard, slog.LevelWarn))
	var tr transports.Transport
	if kind == "amqp" {
		url := os.Getenv("AMQP_URL")
		if url == "" {
			url = "amqp://guest:guest@127.0.0.1:5672//"
		}
		conn, err := amqp.Dial(url)
		if err != nil {
			if os.Getenv("CI") == "true" {
				b.Fatalf("rabbitmq: %v", err)
			}
			b.Skipf("rabbitmq not reachable: %v", err)
		}
		defer conn.Close()
		e.broker = nil
		if e.amqpCh, err = conn.Channel(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { e.cleanup(batch) })
		if err := PreloadAMQP(ctx, url, batch); err != nil {
			b.Fatal(err)
		}
		at, err := amqptransport.New(ctx, url, amqptransport.Options{Logger: logger})
		if err != nil {
			b.Fatal(err)
		}
		defer at.Close()
		tr = at
	} else {
		b.Cleanup(func() { e.cleanup(batch) })
		if err := PreloadRedis(ctx, client, batch); err != nil {
			b.Fatal(err)
		}
		rt, err := redistransport.New(ctx, benchRedisURL, redistransport.Options{Logger: logger})
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Close()
		tr = rt
	}
	var (
		w   *celerity.Worker
		err error
	)
	cfg := celerity.Config{Queues: []string{batch.Queue}, Logger: logger}
	if v, err := strconv.Atoi(os.Getenv("BENCH_PREFETCH_MULTIPLIER")); err == nil {
		cfg.PrefetchMultiplier = v
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_CONCURRENCY")); err == nil {
		cfg.Concurrency = v
	}
	if results {
		rb, err := redisstore.New(ctx, benchRedisURL, redisstore.Options{Logger: logger})
		if err != nil {
			b.Fatal(err)
		}
		defer rb.Close()
		w, err = celerity.NewWorker(tr, rb, cfg)
		if err != nil {
			b.Fatal(err)
		}
	} else if w, err = celerity.NewWorker(tr, nil, cfg); err != nil {
		b.Fatal(err)
	}
	if err := handlers.Register(w, logger); err != nil {
		b.Fatal(err)
	}
	fetchCtx, stopFetch := context.WithCancel(ctx)
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	runErr := make(chan error, 1)

	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() { runErr <- w.Run(fetchCtx, workCtx) }()
	deadline := start.Add(5*time.Minute + time.Duration(b.N)*time.Millisecond)
	for {
		done, finished, err := e.progress(ctx, batch)
		if err != nil {
			b.Fatal(err)
		}
		if finished {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d tasks done", done, b.N)
		}
		select {
		case err := <-runErr:
			b.Fatalf("worker stopped: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stopFetch()
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
	if results {
		st, err := collectResults(ctx, client, batch)
		if err != nil {
			b.Fatal(err)
		}
		if st.Found != b.N || st.Wrong != 0 {
			b.Fatalf("found %d results of %d, %d wrong, e.g. %s", st.Found, b.N, st.Wrong, st.Example)
		}
	}
}
