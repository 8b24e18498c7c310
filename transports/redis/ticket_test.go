package redistransport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/kombu"
)

// lostPops makes pop script calls lose their replies after Redis ran
// them, the way a connection that dies under a call does. repeat: the
// call is sent once more and the caller gets the second reply (go-redis
// repeats a command whose connection broke); otherwise the caller gets
// the error (go-redis gave up). Only the calls numbered in lose are hit.
type lostPops struct {
	repeat bool
	lose   map[int32]bool
	calls  atomic.Int32
}

func (h *lostPops) wrap(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		name, _ := args[0].(string)
		if !strings.EqualFold(name, "evalsha") || args[1] != popScript.Hash() || !h.lose[h.calls.Add(1)] {
			return next(ctx, cmd)
		}
		if err := next(ctx, cmd); err != nil {
			return err
		}
		if h.repeat {
			return next(ctx, cmd)
		}
		err := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer (injected)")}
		cmd.SetErr(err)
		return err
	}
}

func tags(ds []*Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Tag
	}
	return out
}

func wantTags(t *testing.T, ds []*Delivery, prefix string, from, n int) {
	t.Helper()
	var want []string
	for i := from; i < from+n; i++ {
		want = append(want, fmt.Sprintf("%s-%04d", prefix, i))
	}
	if got := tags(ds); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

func wantUnacked(t *testing.T, tr *Transport, n int64) {
	t.Helper()
	if h, z := unackedCounts(t, tr); h != n || z != n {
		t.Fatalf("unacked holds %d entries (index %d), want %d", h, z, n)
	}
}

func wantQueued(t *testing.T, tr *Transport, q string, n int64) {
	t.Helper()
	if got, err := tr.client.LLen(ctxT(t), tr.ks.prefix+q).Result(); err != nil || got != n {
		t.Fatalf("%s holds %d messages (%v), want %d", q, got, err, n)
	}
}

// A pop that Redis ran but whose reply was lost, and that the Redis client
// sent again, returns the messages the first run took: nothing waits in
// unacked for the visibility timeout, and the second run takes no more.
// Before pop tickets, the first run's 4 messages were stranded in unacked
// and the repeat took the next 4.
func TestPopRepeatedByClientReturnsSameBatch(t *testing.T) {
	for _, queues := range [][]string{{"tk_a"}, {"tk_a", "tk_b"}} {
		t.Run(fmt.Sprint(len(queues), "queues"), func(t *testing.T) {
			tr := queueWith(t, "tk_a", "m", 10)
			h := &lostPops{repeat: true, lose: map[int32]bool{1: true}}
			tr.client.AddHook(processHook(h.wrap))
			c := consumeT(t, tr, queues...)
			ds := fetchN(t, c, 4)
			wantTags(t, ds, "m", 0, 4)
			wantUnacked(t, tr, 4)
			wantQueued(t, tr, "tk_a", 6)
			if err := c.Ack(ctxT(t), ds...); err != nil {
				t.Fatal(err)
			}
			wantTags(t, fetchN(t, c, 6), "m", 4, 6)
			if h.calls.Load() < 2 {
				t.Fatal("the injected fault did not happen")
			}
		})
	}
}

// A pop whose reply was lost and that failed is sent again by the next
// Fetch, which gets the same messages, even when it asks for fewer (the
// rest wait in the consumer for the next Fetch); a lost pop still
// pending at Close is repeated and its messages given back to the queue.
func TestPopLostReplyRecoveredByNextFetch(t *testing.T) {
	tr := queueWith(t, "tk_q", "m", 10)
	h := &lostPops{lose: map[int32]bool{1: true, 4: true}}
	tr.client.AddHook(processHook(h.wrap))
	c := consumeT(t, tr, "tk_q")
	ctx := ctxT(t)
	if ds, err := c.Fetch(ctx, 4); err == nil {
		t.Fatalf("fetch with a lost reply returned %v and no error", tags(ds))
	}
	wantUnacked(t, tr, 4) // the first run did take them
	ds := fetchN(t, c, 2)
	wantTags(t, ds, "m", 0, 2)
	if n := c.repeats.Load(); n != 1 {
		t.Fatalf("%d pops repeated, want 1", n)
	}
	more := fetchN(t, c, 2)
	wantTags(t, more, "m", 2, 2)
	wantUnacked(t, tr, 4)
	wantQueued(t, tr, "tk_q", 6)
	if err := c.Ack(ctx, append(ds, more...)...); err != nil {
		t.Fatal(err)
	}
	wantUnacked(t, tr, 0)

	// Call 3 popped normally; call 4 loses its reply and nothing repeats
	// it before Close.
	wantTags(t, fetchN(t, c, 3), "m", 4, 3)
	if _, err := c.Fetch(ctx, 2); err == nil {
		t.Fatal("fetch with a lost reply returned no error")
	}
	wantQueued(t, tr, "tk_q", 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// The two messages of the lost pop are back at the head of the queue,
	// unchanged; the 3 handed out stay in unacked for the visibility sweep.
	wantQueued(t, tr, "tk_q", 3)
	wantUnacked(t, tr, 3)
	next, err := tr.client.LRange(ctx, tr.ks.prefix+"tk_q", -2, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"m-0008", "m-0007"} {
		if !strings.Contains(next[i], `"delivery_tag": "`+want+`"`) || strings.Contains(next[i], "redelivered\": true") {
			t.Fatalf("queue tail %d is %.200s, want %s not marked redelivered", i, next[i], want)
		}
	}
	keys, err := tr.client.Keys(ctx, tr.ks.prefix+ticketKeyPrefix+"*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("tickets left after Close: %v (%v)", keys, err)
	}
}

// Each consumer has tickets of its own: both number their pops from 1,
// so a shared ticket would hand the second consumer's first pop the
// first consumer's batch as a "repeat".
func TestPopTicketsArePerConsumer(t *testing.T) {
	tr := queueWith(t, "tk_p", "m", 6)
	c1 := consumeT(t, tr, "tk_p")
	c2 := consumeT(t, tr, "tk_p")
	wantTags(t, fetchN(t, c1, 3), "m", 0, 3)
	wantTags(t, fetchN(t, c2, 3), "m", 3, 3)
}

// noScript is the error Redis answers EVALSHA with when it has lost the
// script (after SCRIPT FLUSH or a restart).
type noScript struct{}

func (noScript) Error() string { return "NOSCRIPT No matching script. Please use EVAL." }
func (noScript) RedisError()   {}

// A pop that Redis answers with NOSCRIPT is sent again as EVAL with the
// script's source, and its messages arrive recorded as usual.
func TestPopRunsWhenRedisLostTheScript(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	const q = "noscript_q"
	if err := tr.Publish(ctx, "", q, &kombu.Message{Body: []byte("x"), ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	var refused, evals atomic.Int32
	tr.client.AddHook(processHook(func(next redis.ProcessHook) redis.ProcessHook {
		return func(ctx context.Context, cmd redis.Cmder) error {
			args := cmd.Args()
			name, _ := args[0].(string)
			switch {
			case strings.EqualFold(name, "evalsha") && args[1] == popScript.Hash() && refused.Add(1) == 1:
				cmd.SetErr(noScript{})
				return cmd.Err()
			case strings.EqualFold(name, "eval"):
				evals.Add(1)
			}
			return next(ctx, cmd)
		}
	}))
	c := consumeT(t, tr, q)
	ds, err := c.Fetch(ctx, 4)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Fetch = %v, %v", ds, err)
	}
	if refused.Load() == 0 || evals.Load() != 1 {
		t.Fatalf("%d EVALSHA refused, %d EVAL sent; want the pop sent again as EVAL once", refused.Load(), evals.Load())
	}
	if ok, _ := tr.client.HExists(ctx, tr.ks.key("unacked"), ds[0].Tag).Result(); !ok {
		t.Fatalf("message %s not recorded in unacked", ds[0].Tag)
	}
	if err := c.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
}
