package control

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports/memory"
)

// fuzzNodes are nodes over real running workers (in-memory broker), one
// with a fixed pool and one autoscaled, so that every command reaches
// the worker's own methods with whatever arguments the fuzzer sends.
var fuzzNodes = sync.OnceValue(func() [2]*Node {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodes [2]*Node
	for i, cfg := range []celerity.Config{
		{Concurrency: 2, Queues: []string{"q"}, Logger: quiet},
		{AutoscaleMax: 3, AutoscaleMin: 1, Queues: []string{"q"}, Logger: quiet},
	} {
		tr := memory.New()
		w, err := celerity.NewWorker(tr, nil, cfg)
		if err != nil {
			panic(err)
		}
		if err := w.Handle("tasks.add", func(context.Context, *celerity.Request) (any, error) { return nil, nil }); err != nil {
			panic(err)
		}
		go func() { _ = w.Run(context.Background(), context.Background()) }()
		for errors.Is(w.Grow(0), celerity.ErrNotRunning) {
			time.Sleep(time.Millisecond) // Run is starting
		}
		nodes[i] = New(tr, "fuzz@node", w, Options{Logger: quiet})
	}
	return nodes
})

// FuzzDispatch runs every command but shutdown with arbitrary JSON
// arguments against real workers: a bad argument must give an error
// reply, never a panic (a panic would stop the worker).
func FuzzDispatch(f *testing.F) {
	seeds := []struct {
		method, args string
	}{
		{"pool_grow", `{"n": 2}`}, {"pool_shrink", `{"n": 9223372036854775807}`}, {"pool_grow", `{"n": -1e300}`},
		{"autoscale", `{"max": 5, "min": 2}`}, {"autoscale", `{"max": null, "min": "x"}`},
		{"add_consumer", `{"queue": "q2", "exchange": 3, "routing_key": null}`}, {"cancel_consumer", `{"queue": ["q"]}`},
		{"revoke_by_stamped_headers", `{"headers": {"a": [1, [2]], "b": null}, "terminate": true}`},
		{"revoke_by_stamped_headers", `{"headers": ["x", "a=b"]}`}, {"revoke", `{"task_id": [1, "x"], "terminate": "yes"}`},
		{"rate_limit", `{"task_name": "tasks.add", "rate_limit": "1e-300/h"}`},
		{"time_limit", `{"task_name": "tasks.add", "soft": -1, "hard": "nan"}`},
		{"stats", `{}`}, {"active_queues", `{}`}, {"query_task", `{"ids": {"a": 1}}`}, {"hello", `{"from_node": 1, "revoked": []}`},
	}
	for _, s := range seeds {
		f.Add(s.method, []byte(s.args), false)
		f.Add(s.method, []byte(s.args), true)
	}
	f.Fuzz(func(t *testing.T, method string, args []byte, autoscaled bool) {
		if method == "shutdown" {
			return
		}
		v, err := kombu.UnmarshalJSON(args)
		if err != nil {
			return
		}
		a, ok := v.(map[string]any)
		if !ok {
			return
		}
		n := fuzzNodes()[0]
		if autoscaled {
			n = fuzzNodes()[1]
		}
		n.Dispatch(context.Background(), &Request{Method: method, Arguments: a})
	})
}
