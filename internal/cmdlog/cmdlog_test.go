package cmdlog

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestLog(t *testing.T) {
	ctx := context.Background()
	sent := 0
	next := func(context.Context, redis.Cmder) error { sent++; return nil }
	nextPipe := func(_ context.Context, cmds []redis.Cmder) error { sent += len(cmds); return nil }

	var all Log
	_ = all.ProcessHook(next)(ctx, redis.NewStatusCmd(ctx, "SET", "k", "v"))
	_ = all.ProcessPipelineHook(nextPipe)(ctx, []redis.Cmder{
		redis.NewStringCmd(ctx, "get", "k"), redis.NewIntCmd(ctx, "publish", "c", "m")})
	if got := all.Take(); got != "set get publish" {
		t.Errorf("Take() = %q, want %q", got, "set get publish")
	}
	if got := all.Take(); got != "" {
		t.Errorf("second Take() = %q, want nothing", got)
	}

	only := Log{Name: func(c redis.Cmder) string {
		if c.Name() == "get" {
			return "read"
		}
		return ""
	}}
	_ = only.ProcessPipelineHook(nextPipe)(ctx, []redis.Cmder{
		redis.NewStringCmd(ctx, "get", "k"), redis.NewIntCmd(ctx, "publish", "c", "m")})
	if got := only.Take(); got != "read" {
		t.Errorf("Take() = %q, want %q", got, "read")
	}
	if sent != 5 {
		t.Errorf("%d commands reached the next hook, want 5", sent)
	}
}
