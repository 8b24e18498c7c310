// Package handlers holds the Go tasks celerity ships: the reference task
// set that the demo and the compatibility tests call from Python, each
// behaving as the Python function it is named after would under a Python
// Celery worker.
package handlers

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/celerity-go/celerity"
	"github.com/celerity-go/celerity/protocolv2"
)

// Names lists the tasks Register adds.
var Names = []string{
	"tasks.add", "tasks.mul", "tasks.xsum", "tasks.echo", "tasks.fail",
	"tasks.sleep", "tasks.retry_then_succeed", "tasks.request_info",
	"app1.tasks1.deal1", "app1.tasks2.deal2",
}

type pair struct {
	X any `celery:"x"`
	Y any `celery:"y"`
}

type numbers struct {
	Numbers []any `celery:"numbers"`
}

type message struct {
	Message string `celery:"message"`
}

type seconds struct {
	Seconds float64 `celery:"seconds"`
}

type times struct {
	Times int `celery:"times"`
}

type text struct {
	Text string `celery:"text"`
}

type anyArgs struct {
	Args   []any          `celery:"*"`
	Kwargs map[string]any `celery:"**"`
}

// Register adds the reference task set to w. Output that the Python
// versions print goes to logger (nil: slog.Default()).
func Register(w *celerity.Worker, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	regs := []func() error{
		func() error {
			return celerity.Register(w, "tasks.add", func(_ context.Context, t *celerity.Task[pair]) (any, error) {
				return Add(t.Args.X, t.Args.Y)
			})
		},
		func() error {
			return celerity.Register(w, "tasks.mul", func(_ context.Context, t *celerity.Task[pair]) (any, error) {
				return Mul(t.Args.X, t.Args.Y)
			})
		},
		func() error {
			return celerity.Register(w, "tasks.xsum", func(_ context.Context, t *celerity.Task[numbers]) (any, error) {
				return Sum(t.Args.Numbers)
			})
		},
		func() error {
			return celerity.Register(w, "tasks.echo", func(_ context.Context, t *celerity.Task[anyArgs]) (any, error) {
				args, kwargs := t.Args.Args, t.Args.Kwargs
				if args == nil {
					args = []any{}
				}
				if kwargs == nil {
					kwargs = map[string]any{}
				}
				return []any{args, kwargs}, nil
			})
		},
		func() error {
			return celerity.Register(w, "tasks.fail", func(_ context.Context, t *celerity.Task[message]) (any, error) {
				return nil, celerity.ValueError(t.Args.Message)
			})
		},
		func() error {
			return celerity.Register(w, "tasks.sleep", func(ctx context.Context, t *celerity.Task[seconds]) (float64, error) {
				d, err := sleepDuration(t.Args.Seconds)
				if err != nil {
					return 0, err
				}
				tm := time.NewTimer(d)
				defer tm.Stop()
				select {
				case <-tm.C:
					return t.Args.Seconds, nil
				case <-ctx.Done():
					return 0, context.Cause(ctx)
				}
			})
		},
		func() error {
			return celerity.Register(w, "tasks.retry_then_succeed", func(_ context.Context, t *celerity.Task[times]) (int, error) {
				if r := t.Request.Retries; r < t.Args.Times {
					return 0, celerity.Retry(nil, 200*time.Millisecond)
				}
				return t.Request.Retries, nil
			}, celerity.WithMaxRetries(10))
		},
		func() error {
			return w.Handle("tasks.request_info", func(_ context.Context, r *celerity.Request) (any, error) {
				return RequestInfo(r), nil
			})
		},
		func() error {
			return celerity.Register(w, "app1.tasks1.deal1", func(_ context.Context, t *celerity.Task[text]) (string, error) {
				logger.Info(t.Args.Text, "task_name", "app1.tasks1.deal1")
				return t.Args.Text + "=======", nil
			})
		},
		func() error {
			return celerity.Register(w, "app1.tasks2.deal2", func(_ context.Context, t *celerity.Task[text]) (string, error) {
				logger.Info(t.Args.Text, "task_name", "app1.tasks2.deal2")
				return t.Args.Text + "+++++++++", nil
			})
		},
	}
	for _, r := range regs {
		if err := r(); err != nil {
			return err
		}
	}
	return nil
}

// RequestInfo is what tasks.request_info returns: the parts of
// self.request a client may want to check.
func RequestInfo(r *celerity.Request) map[string]any {
	opt := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	tm := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return protocolv2.FormatTime(t)
	}
	args := r.Args
	if args == nil {
		args = []any{}
	}
	kwargs := r.Kwargs
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	return map[string]any{
		"id":        r.ID,
		"retries":   int64(r.Retries),
		"root_id":   opt(r.RootID),
		"parent_id": opt(r.ParentID),
		"group":     opt(r.Group),
		"eta":       tm(r.ETA),
		"expires":   tm(r.Expires),
		"hostname":  r.Hostname,
		"delivery_info": map[string]any{
			"exchange":    r.DeliveryInfo.Exchange,
			"routing_key": r.DeliveryInfo.RoutingKey,
			"priority":    int64(r.DeliveryInfo.Priority),
		},
		"args":   args,
		"kwargs": kwargs,
	}
}

// sleepDuration converts time.sleep's argument as CPython 3 does: the
// seconds become int64 nanoseconds (rounded up), NaN and negative lengths
// raise ValueError, and a length out of int64's range, infinities
// included, OverflowError. time.Duration has the same range.
func sleepDuration(s float64) (time.Duration, error) {
	if math.IsNaN(s) {
		return 0, celerity.ValueError("Invalid value NaN (not a number)")
	}
	ns := math.Ceil(s * 1e9)
	if !(ns >= math.MinInt64 && ns < math.MaxInt64) {
		return 0, celerity.NewPyError("builtins", "OverflowError", "timestamp too large to convert to C _PyTime_t")
	}
	if ns < 0 {
		return 0, celerity.ValueError("sleep length must be non-negative")
	}
	return time.Duration(ns), nil
}
