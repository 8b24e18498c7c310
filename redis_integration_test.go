package celerity_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/protocolv2"
	redisstore "github.com/celerity-go/celerity/resultstore/redis"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

const integrationRedis = "redis://127.0.0.1:6379/3"

// A warm shutdown in the middle of a backlog loses nothing and runs
// nothing twice: every task either has its result or is back in the queue,
// and kombu's unacked hash is empty afterwards.
func TestRedisWarmShutdownLosesNothing(t *testing.T) {
	celerity.RequireRedisServer(t)
	for _, late := range []bool{false, true} {
		name := "acks early"
		if late {
			name = "acks late"
		}
		t.Run(name, func(t *testing.T) { warmShutdownLosesNothing(t, late) })
	}
}

func warmShutdownLosesNothing(t *testing.T, acksLate bool) {
	ctx := context.Background()
	b := make([]byte, 4)
	rand.Read(b)
	pfx := "warmstop_" + hex.EncodeToString(b) + "_"
	tr, err := redistransport.New(ctx, integrationRedis, redistransport.Options{GlobalKeyprefix: pfx})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	rb, err := redisstore.New(ctx, integrationRedis, redisstore.Options{KeyPrefix: pfx, ResultExpires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rb.Close() })
	rc := tr.Client()
	// Registered after the closes, so it runs before them (cleanups run
	// last-in first-out) while the client is still open.
	t.Cleanup(func() {
		keys, err := rc.Keys(ctx, pfx+"*").Result()
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})

	var runs sync.Map // id → *atomic.Int32
	var done atomic.Int64
	w, err := celerity.NewWorker(tr, rb, celerity.Config{Queues: []string{"q"}, Concurrency: 4, AcksLate: acksLate, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("t.work", func(ctx context.Context, r *celerity.Request) (any, error) {
		n, _ := runs.LoadOrStore(r.ID, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		time.Sleep(time.Millisecond)
		done.Add(1)
		return r.ID, nil
	})
	const total = 2000
	ids := make([]string, total)
	for i := range ids {
		ids[i] = protocolv2.NewID()
		m, err := protocolv2.Encode(&protocolv2.Task{ID: ids[i], Name: "t.work", RootID: ids[i], UTC: true},
			protocolv2.EncodeOptions{RoutingKey: "q"})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Publish(ctx, "", "q", m); err != nil {
			t.Fatal(err)
		}
	}
	fetchCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- w.Run(fetchCtx, ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for done.Load() < 300 {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not get going")
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no warm shutdown")
	}

	stored := 0
	for _, id := range ids {
		doc, err := rb.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if doc != nil {
			if doc["status"] != "SUCCESS" || doc["result"] != id {
				t.Fatalf("task %s stored %v", id, doc)
			}
			stored++
		}
	}
	queued := int64(0)
	for _, p := range []int{0, 3, 6, 9} {
		n, err := rc.LLen(ctx, tr.QueueKey("q", p)).Result()
		if err != nil {
			t.Fatal(err)
		}
		queued += n
	}
	unacked, _ := rc.HLen(ctx, pfx+"unacked").Result()
	if stored+int(queued) != total || unacked != 0 {
		t.Errorf("after a warm shutdown: %d results + %d queued = %d of %d, %d left unacked",
			stored, queued, stored+int(queued), total, unacked)
	}
	if stored == total {
		t.Errorf("the shutdown came too late to test anything (all %d done)", total)
	}
	runs.Range(func(k, v any) bool {
		if n := v.(*atomic.Int32).Load(); n != 1 {
			t.Errorf("task %s ran %d times", k, n)
		}
		return true
	})
	t.Logf("%d done, %d handed back", stored, queued)
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
