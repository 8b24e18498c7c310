package celerity

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/protocolv2"
	"github.com/celerity-go/celerity/resultstore"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

// statesBackend records every state stored, in order.
type statesBackend struct {
	mu     sync.Mutex
	states map[string][]string
}

func (b *statesBackend) Store(_ context.Context, metas ...*resultstore.Meta) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range metas {
		b.states[m.TaskID] = append(b.states[m.TaskID], m.Status)
	}
	return nil
}

func (b *statesBackend) Get(context.Context, string) (map[string]any, error) { return nil, nil }
func (b *statesBackend) Close() error                                        { return nil }

func (b *statesBackend) history(id string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.states[id]...)
}

// directWorker runs a worker on a Redis queue of its own; publish sends
// it a task and returns the id.
type directWorker struct {
	t       *testing.T
	w       *Worker
	be      *statesBackend
	tr      *redistransport.Transport
	publish func(name string) string
}

func startDirectWorker(t *testing.T, concurrency int, register func(w *Worker)) *directWorker {
	t.Helper()
	RequireRedisServer(t)
	ctx := context.Background()
	b := make([]byte, 4)
	rand.Read(b)
	pfx := "direct_" + hex.EncodeToString(b) + "_"
	tr, err := redistransport.New(ctx, "redis://127.0.0.1:6379/3", redistransport.Options{GlobalKeyprefix: pfx})
	if err != nil {
		t.Fatal(err)
	}
	rc := tr.Client()
	t.Cleanup(func() {
		tr.Close()
	})
	t.Cleanup(func() {
		if keys, _ := rc.Keys(ctx, pfx+"*").Result(); len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})
	be := &statesBackend{states: map[string][]string{}}
	w, err := NewWorker(tr, be, Config{Queues: []string{"q"}, Concurrency: concurrency,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	register(w)
	fetchCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- w.Run(fetchCtx, ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Error(err)
		}
	})
	d := &directWorker{t: t, w: w, be: be, tr: tr}
	d.publish = func(name string) string {
		id := protocolv2.NewID()
		m, err := protocolv2.Encode(&protocolv2.Task{ID: id, Name: name, RootID: id, UTC: true},
			protocolv2.EncodeOptions{RoutingKey: "q"})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Publish(ctx, "", "q", m); err != nil {
			t.Fatal(err)
		}
		return id
	}
	return d
}

func (d *directWorker) waitFor(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (d *directWorker) pipe() *pipeline {
	d.waitFor("the worker to start", func() bool { return d.w.pipe.Load() != nil })
	return d.w.pipe.Load()
}

// waitIdle waits until the worker is idle: a fetch holds every free token
// and waits for a message (it has reported the broker empty).
func (d *directWorker) waitIdle(p *pipeline) {
	d.t.Helper()
	d.waitFor("a fetch waiting for a message", func() bool {
		p.tokens.mu.Lock()
		free := p.tokens.avail
		p.tokens.mu.Unlock()
		return free == 0 && p.popping.Load() == 0 && p.running.Load() == 0
	})
}

// TestRedisIdleTaskRunsDirect: a task sent to an idle worker runs in the
// goroutine that fetched it and its result is written from there, in
// order after its STARTED state.
func TestRedisIdleTaskRunsDirect(t *testing.T) {
	d := startDirectWorker(t, 2, func(w *Worker) {
		w.Handle("t.add", func(ctx context.Context, r *Request) (any, error) { return int64(2), nil },
			WithTrackStarted(true))
	})
	p := d.pipe()
	const n = 10
	for i := range n {
		d.waitIdle(p)
		id := d.publish("t.add")
		d.waitFor("the result", func() bool { h := d.be.history(id); return len(h) == 2 })
		if h := d.be.history(id); h[0] != resultstore.Started || h[1] != resultstore.Success {
			t.Fatalf("task %d: states %v, want STARTED then SUCCESS", i, h)
		}
	}
	if got := p.directRuns.Load(); got != n {
		t.Errorf("%d of %d tasks sent to an idle worker ran direct", got, n)
	}
}

// TestRedisDirectTaskKeepsLimits: a task run direct counts against the
// concurrency like any other, and a long one lets the next fetch go on
// (after directGrace) so other executors get work meanwhile.
func TestRedisDirectTaskKeepsLimits(t *testing.T) {
	for _, conc := range []int{1, 2} {
		t.Run(map[int]string{1: "concurrency 1", 2: "concurrency 2"}[conc], func(t *testing.T) {
			var running, peak atomic.Int32
			longDone := make(chan struct{})
			var shortBeforeLong atomic.Int32
			track := func() func() {
				n := running.Add(1)
				for {
					m := peak.Load()
					if n <= m || peak.CompareAndSwap(m, n) {
						break
					}
				}
				return func() { running.Add(-1) }
			}
			d := startDirectWorker(t, conc, func(w *Worker) {
				w.Handle("t.long", func(ctx context.Context, r *Request) (any, error) {
					defer track()()
					time.Sleep(300 * time.Millisecond)
					close(longDone)
					return nil, nil
				})
				w.Handle("t.short", func(ctx context.Context, r *Request) (any, error) {
					defer track()()
					select {
					case <-longDone:
					default:
						shortBeforeLong.Add(1)
					}
					return nil, nil
				})
			})
			p := d.pipe()
			d.waitIdle(p)
			long := d.publish("t.long")
			d.waitFor("the long task to start", func() bool { return running.Load() == 1 })
			if got := p.directRuns.Load(); got != 1 {
				t.Fatalf("the long task sent to an idle worker: %d direct runs, want 1", got)
			}
			var shorts []string
			for range 3 {
				shorts = append(shorts, d.publish("t.short"))
			}
			for _, id := range append(shorts, long) {
				d.waitFor("the results", func() bool { return len(d.be.history(id)) == 1 })
			}
			if got := peak.Load(); got > int32(conc) {
				t.Errorf("%d tasks ran at once with concurrency %d", got, conc)
			}
			switch {
			case conc == 1 && shortBeforeLong.Load() != 0:
				t.Errorf("concurrency 1: %d short tasks ran during the long one", shortBeforeLong.Load())
			case conc == 2 && shortBeforeLong.Load() != 3:
				t.Errorf("concurrency 2: %d of 3 short tasks ran during the long one, want all", shortBeforeLong.Load())
			}
		})
	}
}

// RequireRedisServer skips t without a Redis on 127.0.0.1:6379, or fails
// it under CI (CI=true), where a missing service is an error. Exported for
// the external tests of this package.
func RequireRedisServer(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis required under CI: %v", err)
		}
		t.Skipf("no redis: %v", err)
	}
	c.Close()
}

// TestRedisLongDirectTasksKeepFetching: long tasks sent one at a time to
// an idle worker each run in the goroutine that fetched them, and those
// goroutines give their fetch slots back, so every executor fills: with
// two fetch slots, the third task used to wait for the first to finish.
func TestRedisLongDirectTasksKeepFetching(t *testing.T) {
	g := newGate()
	d := startDirectWorker(t, 4, func(w *Worker) { w.Handle("t.gate", g.handler) })
	t.Cleanup(func() { g.release(4) }) // before the worker stops
	p := d.pipe()
	d.waitIdle(p)
	for i := 1; i <= 4; i++ {
		// Every fetch in flight (none, with the bug) waits for a message.
		d.waitFor("the fetches to find the queue empty", func() bool { return p.popping.Load() == 0 })
		d.publish("t.gate")
		d.waitFor("the next task to start", func() bool { r, _, _ := g.state(); return r == i })
	}
	if n := p.directRuns.Load(); n < 3 {
		t.Errorf("%d of 4 tasks ran direct; the test wants the fetching goroutines busy", n)
	}
	g.release(4)
	d.waitFor("all four to finish", func() bool { _, _, f := g.state(); return f == 4 })
}
