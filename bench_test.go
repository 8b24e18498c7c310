package celerity_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/handlers"
	"github.com/celerity-go/celerity/internal/celerylog"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/resultstore"
	"github.com/celerity-go/celerity/transports/memory"
)

// encodingBackend encodes every stored document the way the Redis backend
// does (into a reused buffer) and counts them, so that a benchmark pays
// for the result's encoding but not for any I/O.
type encodingBackend struct {
	mu     sync.Mutex
	buf    []byte
	bytes  int
	n      atomic.Int64
	want   int64
	done   chan struct{}
	failed atomic.Int64
}

func (b *encodingBackend) Store(_ context.Context, metas ...*resultstore.Meta) error {
	b.mu.Lock()
	for _, m := range metas {
		var err error
		if b.buf, err = resultstore.AppendMeta(b.buf[:0], m, resultstore.Style{}); err != nil {
			b.mu.Unlock()
			return err
		}
		b.bytes += len(b.buf)
		if m.Status != "SUCCESS" {
			b.failed.Add(1)
		}
	}
	b.mu.Unlock()
	if b.n.Add(int64(len(metas))) == b.want {
		close(b.done)
	}
	return nil
}

func (b *encodingBackend) Get(context.Context, string) (map[string]any, error) { return nil, nil }
func (b *encodingBackend) Close() error                                        { return nil }

// BenchmarkWorkerMemory measures what the worker itself spends per task,
// with no broker or result store behind it: b.N tasks.add messages,
// encoded as Celery 5.2 sends them, wait on the in-memory transport; the
// worker fetches, decodes, runs and acknowledges each one and encodes its
// SUCCESS document. Allocations and ns/op are the worker's (plus the
// in-memory transport's bookkeeping, which is small).
func BenchmarkWorkerMemory(b *testing.B) {
	for _, results := range []bool{true, false} {
		name := "results"
		if !results {
			name = "noresults"
		}
		b.Run(name, func(b *testing.B) { benchWorkerMemory(b, results) })
	}
}

func benchWorkerMemory(b *testing.B, results bool) {
	tr := memory.New()
	ctx := context.Background()
	for i := range b.N {
		id := protocolv2.NewID()
		m, err := protocolv2.Encode(&protocolv2.Task{
			ID: id, Name: "tasks.add", RootID: id,
			Args: []any{int64(i), int64(i + 1)}, Kwargs: map[string]any{},
		}, protocolv2.EncodeOptions{RoutingKey: "bench", ReplyTo: "6bd1e6a4-0b4e-3ab4-9d2a-3f0b3f1b5d9e"})
		if err != nil {
			b.Fatal(err)
		}
		if err := tr.Publish(ctx, "", "bench", m); err != nil {
			b.Fatal(err)
		}
	}
	logger := slog.New(celerylog.New(io.Discard, slog.LevelWarn))
	be := &encodingBackend{want: int64(b.N), done: make(chan struct{})}
	var rb resultstore.Backend = be
	if !results {
		rb = nil
	}
	w, err := celerity.NewWorker(tr, rb, celerity.Config{Queues: []string{"bench"}, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	if err := handlers.Register(w, logger); err != nil {
		b.Fatal(err)
	}
	fetchCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	go func() { runErr <- w.Run(fetchCtx, ctx) }()
	finished := func() bool {
		if results {
			select {
			case <-be.done:
				return true
			default:
				return false
			}
		}
		return tr.Broker().Len("bench") == 0 && tr.Broker().Unacked() == 0
	}
	for !finished() {
		select {
		case err := <-runErr:
			b.Fatalf("worker stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
	if results {
		if n, f := be.n.Load(), be.failed.Load(); n != int64(b.N) || f != 0 {
			b.Fatalf("stored %d results (%d not SUCCESS), want %d successes", n, f, b.N)
		}
	}
}
