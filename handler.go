package celerity

import (
	"context"
	"fmt"
	"reflect"
	"time"
)

// Handler runs one task. It returns the task's result (stored as SUCCESS)
// or an error that decides the outcome (see the package documentation).
type Handler func(ctx context.Context, r *Request) (any, error)

// Middleware wraps a Handler, e.g. for logging, metrics or tracing.
type Middleware func(Handler) Handler

// Task is what a typed handler receives: the bound arguments and the
// request they came with.
type Task[A any] struct {
	// Args holds the task's positional and keyword arguments bound onto
	// A's fields the way Python binds a call.
	Args A
	// Request describes the message (id, retries, delivery info, …).
	Request *Request
}

// TaskOptions are the per-task settings Celery keeps on a task class.
// Zero values mean "use the worker's Config".
type TaskOptions struct {
	// MaxRetries bounds Retry; nil means Celery's default (3), a negative
	// value retries forever (Python's None).
	MaxRetries *int
	// DefaultRetryDelay is used when Retry gives no countdown (180 s).
	DefaultRetryDelay time.Duration
	// AcksLate overrides Config.AcksLate when non-nil.
	AcksLate *bool
	// TrackStarted overrides Config.TrackStarted when non-nil.
	TrackStarted *bool
	// IgnoreResult stores no result for this task.
	IgnoreResult bool
}

// TaskOption sets one TaskOptions field at registration.
type TaskOption func(*TaskOptions)

// WithMaxRetries sets max_retries; n < 0 means retry forever.
func WithMaxRetries(n int) TaskOption { return func(o *TaskOptions) { o.MaxRetries = &n } }

// WithDefaultRetryDelay sets default_retry_delay.
func WithDefaultRetryDelay(d time.Duration) TaskOption {
	return func(o *TaskOptions) { o.DefaultRetryDelay = d }
}

// WithAcksLate sets acks_late for this task.
func WithAcksLate(v bool) TaskOption { return func(o *TaskOptions) { o.AcksLate = &v } }

// WithTrackStarted sets track_started for this task.
func WithTrackStarted(v bool) TaskOption { return func(o *TaskOptions) { o.TrackStarted = &v } }

// WithIgnoreResult sets ignore_result for this task.
func WithIgnoreResult() TaskOption { return func(o *TaskOptions) { o.IgnoreResult = true } }

type registered struct {
	name    string
	handler Handler
	opts    TaskOptions
}

// Register adds a typed handler for the task called name. A must be a
// struct; its fields receive the task's arguments as Python would bind
// them to a function whose parameters are the fields in order:
//
//	type AddArgs struct {
//		X int `celery:"x"`
//		Y int `celery:"y"`
//	}
//
// A field's parameter name comes from its `celery` tag, or else is the
// field name in snake_case. Tag options: ",optional" for a parameter with a
// default (the field keeps its zero value when not given); "*" on an []any
// field collects extra positional arguments; "**" on a map[string]any field
// collects extra keyword arguments; "-" skips the field. A call that Python
// would refuse (missing, extra or duplicate arguments, or a value that does
// not fit the field's type) stores FAILURE with a TypeError naming the task.
func Register[A, R any](w *Worker, name string, fn func(ctx context.Context, t *Task[A]) (R, error), opts ...TaskOption) error {
	b, err := newBinder(reflect.TypeFor[A](), name)
	if err != nil {
		return fmt.Errorf("celerity: register %s: %w", name, err)
	}
	h := func(ctx context.Context, r *Request) (any, error) {
		t := &Task[A]{Request: r}
		if err := b.bind(r.Args, r.Kwargs, reflect.ValueOf(&t.Args).Elem()); err != nil {
			return nil, err
		}
		return fn(ctx, t)
	}
	return w.Handle(name, h, opts...)
}
