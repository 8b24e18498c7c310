package celerity_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// Connections cut in the middle of a backlog lose nothing and run nothing
// twice. While the worker drains, the test kills its broker and result
// store connections (CLIENT KILL, this test's named clients only) again
// and again: pops, carried acks, records and result writes fail mid-way
// and are retried on new connections. A pop whose reply is lost leaves its
// messages recorded in unacked; the visibility sweep brings them back.
// Afterwards every task has one SUCCESS and ran once, and kombu's unacked
// hash and index are empty.
func TestRedisConnectionLossLosesNothing(t *testing.T) {
	celerity.RequireRedisServer(t)
	for _, late := range []bool{false, true} {
		name := "acks early"
		if late {
			name = "acks late"
		}
		t.Run(name, func(t *testing.T) { connectionLossLosesNothing(t, late) })
	}
}

func connectionLossLosesNothing(t *testing.T, acksLate bool) {
	ctx := context.Background()
	b := make([]byte, 4)
	rand.Read(b)
	tag := hex.EncodeToString(b)
	pfx := "connloss_" + tag + "_"
	name := "connloss-" + tag
	tr, err := redistransport.New(ctx, integrationRedis, redistransport.Options{
		GlobalKeyprefix: pfx,
		ClientName:      name,
		// Short enough that messages whose pop reply was lost come back
		// within the test, long enough that no delivered task's ack (sent
		// within milliseconds, retried on a new connection) is overtaken.
		VisibilityTimeout: 3 * time.Second,
		RestoreInterval:   250 * time.Millisecond,
		Logger:            quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	rb, err := redisstore.New(ctx, integrationRedis+"?client_name="+name, redisstore.Options{KeyPrefix: pfx, ResultExpires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rb.Close() })
	opts, err := redis.ParseURL(integrationRedis)
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(opts)
	t.Cleanup(func() {
		if keys, err := admin.Keys(ctx, pfx+"*").Result(); err == nil && len(keys) > 0 {
			admin.Del(ctx, keys...)
		}
		admin.Close()
	})

	var runs sync.Map // id → *atomic.Int32
	var started atomic.Int64
	w, err := celerity.NewWorker(tr, rb, celerity.Config{Queues: []string{"q"}, Concurrency: 4, AcksLate: acksLate, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("t.work", func(ctx context.Context, r *celerity.Request) (any, error) {
		n, _ := runs.LoadOrStore(r.ID, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		started.Add(1)
		time.Sleep(time.Millisecond)
		return r.ID, nil
	})
	const total = 3000
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
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- w.Run(fetchCtx, ctx) }()

	// Kill the worker's connections every 20 ms while the backlog lasts
	// (the last quarter drains undisturbed, so that no kill can hit a BRPOP
	// reply: kombu's own pop-then-record window, which no worker closes).
	rounds := 0
	for started.Load() < total*3/4 && rounds < 100 {
		time.Sleep(20 * time.Millisecond)
		if killClients(t, admin, name) > 0 {
			rounds++
		}
	}
	if rounds < 5 {
		t.Fatalf("only %d rounds of kills landed before the backlog was drained", rounds)
	}

	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(pending) > 0 {
		for id := range pending {
			doc, err := rb.Get(ctx, id)
			if err != nil {
				continue // a killed connection; ask again
			}
			if doc == nil {
				continue
			}
			if doc["status"] != "SUCCESS" || doc["result"] != id {
				t.Fatalf("task %s stored %v", id, doc)
			}
			delete(pending, id)
		}
		if len(pending) > 0 && time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks have no result after %d rounds of killed connections", len(pending), total, rounds)
		}
		time.Sleep(20 * time.Millisecond)
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
	if n, _ := admin.HLen(ctx, pfx+"unacked").Result(); n != 0 {
		t.Errorf("%d entries left in unacked", n)
	}
	if n, _ := admin.ZCard(ctx, pfx+"unacked_index").Result(); n != 0 {
		t.Errorf("%d entries left in unacked_index", n)
	}
	twice := 0
	runs.Range(func(k, v any) bool {
		if n := v.(*atomic.Int32).Load(); n != 1 {
			twice++
			if twice <= 5 {
				t.Errorf("task %s ran %d times", k, n)
			}
		}
		return true
	})
	t.Logf("%d tasks, %d rounds of killed connections, %d tasks ran more than once", total, rounds, twice)
}

// killClients kills every connection named name and returns how many.
func killClients(t *testing.T, admin *redis.Client, name string) int {
	t.Helper()
	list, err := admin.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if admin.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err() == nil {
					killed++
				}
			}
		}
	}
	return killed
}

// An idle worker whose connections are killed while it waits in BRPOP
// (and while its result store is idle) reconnects and serves the tasks
// that come afterwards, one at a time, each once.
func TestRedisIdleWorkerSurvivesConnectionLoss(t *testing.T) {
	celerity.RequireRedisServer(t)
	ctx := context.Background()
	b := make([]byte, 4)
	rand.Read(b)
	tag := hex.EncodeToString(b)
	pfx := "idleloss_" + tag + "_"
	name := "idleloss-" + tag
	tr, err := redistransport.New(ctx, integrationRedis, redistransport.Options{
		GlobalKeyprefix: pfx, ClientName: name, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	rb, err := redisstore.New(ctx, integrationRedis+"?client_name="+name, redisstore.Options{KeyPrefix: pfx, ResultExpires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rb.Close() })
	opts, err := redis.ParseURL(integrationRedis)
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(opts)
	t.Cleanup(func() {
		if keys, err := admin.Keys(ctx, pfx+"*").Result(); err == nil && len(keys) > 0 {
			admin.Del(ctx, keys...)
		}
		admin.Close()
	})
	var runs sync.Map // id → *atomic.Int32
	w, err := celerity.NewWorker(tr, rb, celerity.Config{Queues: []string{"q"}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	w.Handle("t.echo", func(ctx context.Context, r *celerity.Request) (any, error) {
		n, _ := runs.LoadOrStore(r.ID, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		return r.ID, nil
	})
	fetchCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- w.Run(fetchCtx, ctx) }()

	publish := func() string {
		id := protocolv2.NewID()
		m, err := protocolv2.Encode(&protocolv2.Task{ID: id, Name: "t.echo", RootID: id, UTC: true},
			protocolv2.EncodeOptions{RoutingKey: "q"})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Publish(ctx, "", "q", m); err != nil {
			t.Fatal(err)
		}
		return id
	}
	waitResult := func(id string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			doc, err := rb.Get(ctx, id)
			if err == nil && doc != nil {
				if doc["status"] != "SUCCESS" || doc["result"] != id {
					t.Fatalf("task %s stored %v", id, doc)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no result for %s (last error %v)", id, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// One task first: the worker is connected and then waits in BRPOP.
	waitResult(publish())
	kills := 0
	var ids []string
	var slowest time.Duration
	for round := range 5 {
		time.Sleep(50 * time.Millisecond)
		n := killClients(t, admin, name)
		if n == 0 {
			t.Fatalf("round %d: no connection named %s to kill", round, name)
		}
		kills += n
		for range 4 {
			t0 := time.Now()
			id := publish()
			waitResult(id)
			ids = append(ids, id)
			slowest = max(slowest, time.Since(t0))
		}
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
	for _, id := range ids {
		v, ok := runs.Load(id)
		if !ok || v.(*atomic.Int32).Load() != 1 {
			t.Errorf("task %s did not run exactly once", id)
		}
	}
	if n, _ := admin.HLen(ctx, pfx+"unacked").Result(); n != 0 {
		t.Errorf("%d entries left in unacked", n)
	}
	t.Logf("%d connections killed in 5 rounds, %d tasks served after them, the slowest in %v", kills, len(ids), slowest)
}
