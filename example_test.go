package celerity_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/resultstore"
	"github.com/celerity-go/celerity/transports/memory"
)

// printBackend prints every state the worker stores.
type printBackend struct{ done chan struct{} }

func (b printBackend) Store(_ context.Context, metas ...*resultstore.Meta) error {
	for _, m := range metas {
		if exc, ok := m.Result.(*resultstore.ExceptionInfo); ok {
			fmt.Printf("%s %s.%s%q\n", m.Status, exc.Module, exc.Type, exc.Message)
		} else {
			fmt.Println(m.Status, m.Result)
		}
		b.done <- struct{}{}
	}
	return nil
}
func (printBackend) Get(context.Context, string) (map[string]any, error) { return nil, nil }
func (printBackend) Close() error                                        { return nil }

// send publishes a task message the way Python's send_task would.
func send(tr *memory.Transport, name string, args []any, kwargs map[string]any) {
	id := protocolv2.NewID()
	m, _ := protocolv2.Encode(&protocolv2.Task{ID: id, Name: name, Args: args, Kwargs: kwargs, RootID: id, UTC: true},
		protocolv2.EncodeOptions{RoutingKey: "celery"})
	_ = tr.Publish(context.Background(), "", "celery", m)
}

// A typed handler: Celery's positional and keyword arguments are bound to
// the struct fields as Python binds a call.
func ExampleRegister() {
	tr := memory.New()
	be := printBackend{done: make(chan struct{}, 3)}
	w, _ := celerity.NewWorker(tr, be, celerity.Config{Concurrency: 1, Logger: slog.New(slog.DiscardHandler)})

	type AddArgs struct {
		X int `celery:"x"`
		Y int `celery:"y"`
	}
	_ = celerity.Register(w, "tasks.add", func(ctx context.Context, t *celerity.Task[AddArgs]) (int, error) {
		return t.Args.X + t.Args.Y, nil
	})

	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- w.Run(ctx, context.Background()) }()
	send(tr, "tasks.add", []any{int64(2), int64(3)}, nil) // add.delay(2, 3)
	<-be.done
	send(tr, "tasks.add", nil, map[string]any{"x": int64(4), "y": int64(5)}) // add.delay(x=4, y=5)
	<-be.done
	send(tr, "tasks.add", []any{int64(1)}, nil) // add.delay(1)
	<-be.done
	stop()
	<-stopped
	// Output:
	// SUCCESS 5
	// SUCCESS 9
	// FAILURE builtins.TypeError["add() missing 1 required positional argument: 'y'"]
}

// A raw handler sees the decoded arguments and the request; returning a
// PyError makes Python clients raise that exception type.
func ExampleWorker_Handle() {
	tr := memory.New()
	be := printBackend{done: make(chan struct{}, 1)}
	w, _ := celerity.NewWorker(tr, be, celerity.Config{Concurrency: 1, Logger: slog.New(slog.DiscardHandler)})
	_ = w.Handle("tasks.fail", func(ctx context.Context, r *celerity.Request) (any, error) {
		return nil, celerity.ValueError(fmt.Sprint(r.Args[0]))
	})
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- w.Run(ctx, context.Background()) }()
	send(tr, "tasks.fail", []any{"boom"}, nil)
	<-be.done
	stop()
	<-stopped
	// Output:
	// FAILURE builtins.ValueError["boom"]
}

// Grow and Shrink resize a running worker's pool and prefetch window, as
// Celery's pool_grow and pool_shrink commands do.
func ExampleWorker_Grow() {
	w, _ := celerity.NewWorker(memory.New(), nil, celerity.Config{Concurrency: 1, Logger: slog.New(slog.DiscardHandler)})
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- w.Run(ctx, context.Background()) }()
	for errors.Is(w.Grow(3), celerity.ErrNotRunning) {
		time.Sleep(time.Millisecond) // Run is starting
	}
	s := w.Stats()
	fmt.Println("executors", s.Concurrency, "prefetch", s.Prefetch)
	_ = w.Shrink(2)
	s = w.Stats()
	fmt.Println("executors", s.Concurrency, "prefetch", s.Prefetch)
	stop()
	<-stopped
	// Output:
	// executors 4 prefetch 16
	// executors 2 prefetch 8
}
