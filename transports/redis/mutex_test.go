package redistransport

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// lostReplies makes the sweep's mutex calls meet a broken connection the
// way they do when the connection dies under them: the first SET NX is
// applied and then sent once more (go-redis repeats a command whose reply
// a broken connection lost, and Redis answers the repeat "not set"), and
// the first release fails before it reaches Redis.
type lostReplies struct {
	sets, unlocks atomic.Int32
}

// processHook is a go-redis hook that wraps single commands only.
type processHook func(next redis.ProcessHook) redis.ProcessHook

func (h processHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h processHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h processHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return h(next) }

func (h *lostReplies) wrap(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		name, _ := args[0].(string)
		last, _ := args[len(args)-1].(string)
		switch {
		case strings.EqualFold(name, "set") && strings.EqualFold(last, "nx") && h.sets.Add(1) == 1:
			if err := next(ctx, cmd); err != nil {
				return err
			}
			return next(ctx, cmd)
		case strings.EqualFold(name, "evalsha") && args[1] == unlockScript.Hash() && h.unlocks.Add(1) == 1:
			err := &net.OpError{Op: "write", Net: "tcp", Err: errors.New("connection reset by peer (injected)")}
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// A sweep whose mutex calls lose their replies still sweeps and leaves no
// mutex behind. Before, the repeated SET NX's "not set" read as "another
// process holds the mutex" and the release was tried once, so the mutex
// stayed until unacked_mutex_expire (300 s): no process could restore
// anything meanwhile, and messages whose pop reply a broken connection
// lost waited that long in unacked.
func TestSweepSurvivesLostMutexReplies(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	p := tr.ks.prefix
	deliverOne(t, tr, "mx_q")
	sweeper := newTestTransport(t, Options{VisibilityTimeout: time.Nanosecond})
	h := &lostReplies{}
	sweeper.client.AddHook(processHook(h.wrap))
	if restored := sweepUntilRestored(t, sweeper); restored != 1 {
		t.Fatalf("RestoreVisible restored %d", restored)
	}
	if h.sets.Load() == 0 || h.unlocks.Load() < 2 {
		t.Fatalf("the injected faults did not happen: %d SET NX, %d releases", h.sets.Load(), h.unlocks.Load())
	}
	if n, _ := tr.client.Exists(ctx, p+"unacked_mutex").Result(); n != 0 {
		ttl, _ := tr.client.PTTL(ctx, p+"unacked_mutex").Result()
		t.Fatalf("unacked_mutex left behind (expires in %v)", ttl)
	}
	if n, _ := tr.client.LLen(ctx, p+"mx_q").Result(); n != 1 {
		t.Fatalf("restored list length %d", n)
	}
}
