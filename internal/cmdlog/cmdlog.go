// Package cmdlog records the commands a go-redis client sends, for tests
// that check which calls a piece of code makes.
package cmdlog

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Log is a go-redis hook (client.AddHook) that records a name for every
// command the client sends, pipelined ones included.
type Log struct {
	// Name names a command in the log; "" leaves it out. Nil records
	// every command by its lower-case name.
	Name func(redis.Cmder) string

	mu    sync.Mutex
	names []string
}

// DialHook leaves dialling alone.
func (l *Log) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook records a single command.
func (l *Log) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.add(cmd)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook records the commands of a pipeline, in order.
func (l *Log) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			l.add(c)
		}
		return next(ctx, cmds)
	}
}

func (l *Log) add(c redis.Cmder) {
	name := strings.ToLower(c.Name())
	if l.Name != nil {
		name = l.Name(c)
	}
	if name == "" {
		return
	}
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
}

// Take returns the names recorded so far, separated by spaces, and
// forgets them.
func (l *Log) Take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(l.names, " ")
	l.names = nil
	return s
}
