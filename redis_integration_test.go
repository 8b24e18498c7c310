package celerity_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
	inBothAckModes(t, func(t *testing.T, acksLate bool) { warmShutdownLosesNothing(t, acksLate, false) })
}

// The same while the worker's connections are killed again and again
// during the shutdown: handing the unstarted messages back, acking and
// storing fail mid-way and are retried on new connections.
func TestRedisWarmShutdownUnderConnectionLoss(t *testing.T) {
	celerity.RequireRedisServer(t)
	inBothAckModes(t, func(t *testing.T, acksLate bool) { warmShutdownLosesNothing(t, acksLate, true) })
}

func warmShutdownLosesNothing(t *testing.T, acksLate, kill bool) {
	ctx := context.Background()
	k := newKillable(t, "warmstop", redistransport.Options{})
	tr, rb, rc, pfx := k.tr, k.rb, k.admin, k.pfx

	const total = 2000
	ids := publishTasks(t, tr, "t.work", total)
	var runs runCounter
	w := startWorker(t, k, celerity.Config{Concurrency: 4, AcksLate: acksLate}, "t.work", runs.handler(time.Millisecond))
	runs.waitStarted(t, 300)
	kills := make(chan int, 1)
	stopped := make(chan struct{})
	if kill {
		go func() {
			n := 0
			for {
				n += k.kill()
				select {
				case <-stopped:
					kills <- n
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
	}
	w.stop()
	close(stopped)
	if kill {
		if n := <-kills; n == 0 {
			t.Fatal("no connection was killed during the shutdown")
		} else {
			t.Logf("%d connections killed during the shutdown", n)
		}
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
	runs.checkOnce(t)
	t.Logf("%d done, %d handed back", stored, queued)
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// inBothAckModes runs test as two subtests, acks early and acks late.
func inBothAckModes(t *testing.T, test func(t *testing.T, acksLate bool)) {
	for _, late := range []bool{false, true} {
		name := "acks early"
		if late {
			name = "acks late"
		}
		t.Run(name, func(t *testing.T) { test(t, late) })
	}
}

// runCounter counts the runs of every task id its handler serves.
type runCounter struct {
	runs    sync.Map // id → *atomic.Int32
	started atomic.Int64
}

// handler counts the run, sleeps for d and returns the task id.
func (c *runCounter) handler(d time.Duration) celerity.Handler {
	return func(ctx context.Context, r *celerity.Request) (any, error) {
		n, _ := c.runs.LoadOrStore(r.ID, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		c.started.Add(1)
		time.Sleep(d)
		return r.ID, nil
	}
}

// waitStarted waits until n runs have started.
func (c *runCounter) waitStarted(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.started.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the worker started %d of %d runs", c.started.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkOnce reports (the first five of) the tasks that ran more than once
// and returns how many did.
func (c *runCounter) checkOnce(t *testing.T) int {
	t.Helper()
	twice := 0
	c.runs.Range(func(k, v any) bool {
		if n := v.(*atomic.Int32).Load(); n != 1 {
			twice++
			if twice <= 5 {
				t.Errorf("task %s ran %d times", k, n)
			}
		}
		return true
	})
	return twice
}

// runningWorker is a worker started by startWorker.
type runningWorker struct {
	t      *testing.T
	cancel context.CancelFunc // ends fetching
	ran    chan error
}

// startWorker runs a worker on k's transport and store, consuming queue
// "q" with cfg (quiet), serving task name with h. Cleanup stops it if the
// test has not.
func startWorker(t *testing.T, k *killable, cfg celerity.Config, name string, h celerity.Handler) *runningWorker {
	t.Helper()
	cfg.Queues, cfg.Logger = []string{"q"}, quietLogger()
	w, err := celerity.NewWorker(k.tr, k.rb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Handle(name, h); err != nil {
		t.Fatal(err)
	}
	fetchCtx, stop := context.WithCancel(context.Background())
	rw := &runningWorker{t: t, cancel: stop, ran: make(chan error, 1)}
	go func() { rw.ran <- w.Run(fetchCtx, context.Background()) }()
	t.Cleanup(stop)
	return rw
}

// stop shuts the worker down warmly and waits for Run to return.
func (rw *runningWorker) stop() {
	rw.t.Helper()
	rw.cancel()
	select {
	case err := <-rw.ran:
		if err != nil {
			rw.t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		rw.t.Fatal("no warm shutdown")
	}
}

// publishTasks publishes n calls of task name to queue "q" and returns
// their ids.
func publishTasks(t *testing.T, tr *redistransport.Transport, name string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = publishTask(t, tr, name)
	}
	return ids
}

// publishTask publishes a call of task name to queue "q" and returns its id.
func publishTask(t *testing.T, tr *redistransport.Transport, name string) string {
	t.Helper()
	id := protocolv2.NewID()
	m, err := protocolv2.Encode(&protocolv2.Task{ID: id, Name: name, RootID: id, UTC: true}, protocolv2.EncodeOptions{RoutingKey: "q"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(context.Background(), "", "q", m); err != nil {
		t.Fatal(err)
	}
	return id
}

// Connections cut in the middle of a backlog lose nothing and run nothing
// twice. While the worker drains, the test kills its broker and result
// store connections (CLIENT KILL, this test's named clients only) again
// and again: pops, carried acks, records and result writes fail mid-way
// and are retried on new connections. A pop whose reply is lost is sent
// again and returns the messages its first run recorded (pop tickets);
// the visibility timeout is an hour, so no sweep rescues anything within
// the test. Afterwards every task has one SUCCESS and ran once, and
// kombu's unacked hash and index are empty. (Without pop tickets, 1 to 11
// of the 3,000 tasks were stranded in unacked in each of 6 runs.)
func TestRedisConnectionLossLosesNothing(t *testing.T) {
	celerity.RequireRedisServer(t)
	inBothAckModes(t, connectionLossLosesNothing)
}

func connectionLossLosesNothing(t *testing.T, acksLate bool) {
	k := newKillable(t, "connloss", redistransport.Options{
		// Nothing may depend on the sweep: a message left in unacked
		// stays there for the rest of the test.
		VisibilityTimeout: time.Hour,
		RestoreInterval:   250 * time.Millisecond,
	})
	tr := k.tr

	const total = 3000
	ids := publishTasks(t, tr, "t.work", total)
	var runs runCounter
	w := startWorker(t, k, celerity.Config{Concurrency: 4, AcksLate: acksLate}, "t.work", runs.handler(time.Millisecond))

	// Kill the worker's connections every 20 ms while the backlog lasts
	// (the last quarter drains undisturbed, so that no kill can hit a BRPOP
	// reply: kombu's own pop-then-record window, which no worker closes).
	rounds := 0
	for runs.started.Load() < total*3/4 && rounds < 100 {
		time.Sleep(20 * time.Millisecond)
		if k.kill() > 0 {
			rounds++
		}
	}
	if rounds < 5 {
		t.Fatalf("only %d rounds of kills landed before the backlog was drained", rounds)
	}

	k.waitSucceeded(ids, &runs, fmt.Sprintf("after %d rounds of killed connections", rounds))
	w.stop()
	k.checkUnackedEmpty()
	twice := runs.checkOnce(t)
	t.Logf("%d tasks, %d rounds of killed connections, %d tasks ran more than once", total, rounds, twice)
}

// killable is a Redis transport and result store with their keys under a
// prefix of their own and a client name of their own on their
// connections, so that a test can kill them (and no other test's).
type killable struct {
	t     *testing.T
	tr    *redistransport.Transport
	rb    *redisstore.Backend
	admin *redis.Client // unnamed: survives kill
	pfx   string
	name  string
}

// newKillable connects a transport (opts, with the prefix, client name and
// a quiet logger filled in) and a result store; cleanup deletes the keys.
func newKillable(t *testing.T, stem string, opts redistransport.Options) *killable {
	t.Helper()
	return newKillableAt(t, integrationRedis, stem, opts)
}

// newKillableAt is newKillable for the Redis at url.
func newKillableAt(t *testing.T, url, stem string, opts redistransport.Options) *killable {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 4)
	rand.Read(b)
	tag := hex.EncodeToString(b)
	k := &killable{t: t, pfx: stem + "_" + tag + "_", name: stem + "-" + tag}
	opts.GlobalKeyprefix, opts.ClientName, opts.Logger = k.pfx, k.name, quietLogger()
	var err error
	if k.tr, err = redistransport.New(ctx, url, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.tr.Close() })
	k.rb, err = redisstore.New(ctx, url+"?client_name="+k.name, redisstore.Options{KeyPrefix: k.pfx, ResultExpires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.rb.Close() })
	ropts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	k.admin = redis.NewClient(ropts)
	t.Cleanup(func() {
		if keys, err := k.admin.Keys(ctx, k.pfx+"*").Result(); err == nil && len(keys) > 0 {
			k.admin.Del(ctx, keys...)
		}
		k.admin.Close()
	})
	return k
}

// waitSucceeded waits (up to a minute) until every task of ids has a
// SUCCESS result that is its id, failing at once on any other document
// and, at the deadline, with where each missing task is (after: what
// happened to the worker, for the message).
func (k *killable) waitSucceeded(ids []string, runs *runCounter, after string) {
	k.t.Helper()
	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(pending) > 0 {
		for id := range pending {
			doc, err := k.rb.Get(context.Background(), id)
			if err != nil || doc == nil {
				continue // not yet, or a killed connection: ask again
			}
			if doc["status"] != "SUCCESS" || doc["result"] != id {
				k.t.Fatalf("task %s stored %v", id, doc)
			}
			delete(pending, id)
		}
		if len(pending) > 0 && time.Now().After(deadline) {
			for id := range pending {
				k.t.Errorf("task %s: no result; %s", id, k.whereIs(id, runs))
			}
			k.t.Fatalf("%d of %d tasks have no result %s", len(pending), len(ids), after)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkUnackedEmpty reports entries left in kombu's unacked hash and
// index.
func (k *killable) checkUnackedEmpty() {
	k.t.Helper()
	ctx := context.Background()
	if n, err := k.admin.HLen(ctx, k.pfx+"unacked").Result(); err != nil || n != 0 {
		k.t.Errorf("%d entries left in unacked (%v)", n, err)
	}
	if n, err := k.admin.ZCard(ctx, k.pfx+"unacked_index").Result(); err != nil || n != 0 {
		k.t.Errorf("%d entries left in unacked_index (%v)", n, err)
	}
}

// whereIs tells where task id's message is (queue "q", unacked) and how
// often it ran, for a failure report.
func (k *killable) whereIs(id string, runs *runCounter) string {
	ctx := context.Background()
	n := int32(0)
	if v, ok := runs.runs.Load(id); ok {
		n = v.(*atomic.Int32).Load()
	}
	where := []string{fmt.Sprintf("ran %d times", n)}
	for _, p := range []int{0, 3, 6, 9} {
		items, _ := k.admin.LRange(ctx, k.tr.QueueKey("q", p), 0, -1).Result()
		for _, it := range items {
			if strings.Contains(it, id) {
				where = append(where, "queued in "+k.tr.QueueKey("q", p))
			}
		}
	}
	entries, _ := k.admin.HGetAll(ctx, k.pfx+"unacked").Result()
	for tag, v := range entries {
		if strings.Contains(v, id) {
			score, err := k.admin.ZScore(ctx, k.pfx+"unacked_index", tag).Result()
			where = append(where, fmt.Sprintf("in unacked as %s (index score %v, %v; now %d)", tag, score, err, time.Now().Unix()))
		}
	}
	return strings.Join(where, ", ")
}

// kill kills every connection of the transport and the store and returns
// how many there were.
func (k *killable) kill() int {
	k.t.Helper()
	list, err := k.admin.ClientList(context.Background()).Result()
	if err != nil {
		k.t.Fatal(err)
	}
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+k.name+" ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if k.admin.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err() == nil {
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
	k := newKillable(t, "idleloss", redistransport.Options{})
	var runs runCounter
	w := startWorker(t, k, celerity.Config{}, "t.echo", runs.handler(0))

	publish := func() string { return publishTask(t, k.tr, "t.echo") }
	waitResult := func(id string) { k.waitSucceeded([]string{id}, &runs, "after killed connections") }
	// One task first: the worker is connected and then waits in BRPOP.
	waitResult(publish())
	kills := 0
	var ids []string
	var slowest time.Duration
	for round := range 5 {
		time.Sleep(50 * time.Millisecond)
		n := k.kill()
		if n == 0 {
			t.Fatalf("round %d: no connection named %s to kill", round, k.name)
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
	w.stop()
	if runs.started.Load() != int64(len(ids))+1 {
		t.Errorf("%d runs for %d tasks", runs.started.Load(), len(ids)+1)
	}
	runs.checkOnce(t)
	k.checkUnackedEmpty()
	t.Logf("%d connections killed in 5 rounds, %d tasks served after them, the slowest in %v", kills, len(ids), slowest)
}
