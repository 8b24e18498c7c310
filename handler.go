package celerity

import (
	"context"
	"errors"
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
	// StoreErrorsEvenIfIgnored overrides Config.StoreErrorsEvenIfIgnored
	// when non-nil: with IgnoreResult, still store FAILURE, RETRY and
	// REVOKED.
	StoreErrorsEvenIfIgnored *bool
	// AcksOnFailureOrTimeout overrides Config.AcksOnFailureOrTimeout when
	// non-nil.
	AcksOnFailureOrTimeout *bool
	// RejectOnWorkerLost overrides Config.RejectOnWorkerLost when non-nil
	// (accepted for parity; see Config.RejectOnWorkerLost).
	RejectOnWorkerLost *bool

	// TimeLimit is the task's hard time limit (time_limit); zero means the
	// worker's Config.TimeLimit. A message's timelimit header wins.
	TimeLimit time.Duration
	// SoftTimeLimit is the task's soft time limit (soft_time_limit); zero
	// means Config.SoftTimeLimit. A message's timelimit header wins.
	SoftTimeLimit time.Duration

	// RateLimit is Celery's rate_limit ("10/s", "100/m", "1000/h", a plain
	// number per second; "" for none). Config.RateLimits wins, as Celery's
	// task_annotations do.
	RateLimit string

	// AutoretryFor lists matchers (Celery's autoretry_for): when the
	// handler returns an error one of them accepts, the task is retried as
	// if it had returned Retry(err, countdown) with the backoff below, or
	// the default retry delay without backoff. See AutoretryOn and
	// AutoretryAs.
	AutoretryFor []func(error) bool
	// RetryBackoff is retry_backoff: the backoff factor in whole seconds
	// (Celery's True is 1); 0 disables backoff.
	RetryBackoff int
	// RetryBackoffMax is retry_backoff_max in seconds; nil means 600.
	RetryBackoffMax *int
	// RetryJitter is retry_jitter; nil means true (full jitter).
	RetryJitter *bool
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

// WithStoreErrorsEvenIfIgnored sets store_errors_even_if_ignored.
func WithStoreErrorsEvenIfIgnored(v bool) TaskOption {
	return func(o *TaskOptions) { o.StoreErrorsEvenIfIgnored = &v }
}

// WithAcksOnFailureOrTimeout sets acks_on_failure_or_timeout.
func WithAcksOnFailureOrTimeout(v bool) TaskOption {
	return func(o *TaskOptions) { o.AcksOnFailureOrTimeout = &v }
}

// WithRejectOnWorkerLost sets reject_on_worker_lost.
func WithRejectOnWorkerLost(v bool) TaskOption {
	return func(o *TaskOptions) { o.RejectOnWorkerLost = &v }
}

// WithTimeLimit sets the hard time limit (time_limit).
func WithTimeLimit(d time.Duration) TaskOption { return func(o *TaskOptions) { o.TimeLimit = d } }

// WithSoftTimeLimit sets the soft time limit (soft_time_limit).
func WithSoftTimeLimit(d time.Duration) TaskOption {
	return func(o *TaskOptions) { o.SoftTimeLimit = d }
}

// WithRateLimit sets rate_limit, e.g. "10/s".
func WithRateLimit(rate string) TaskOption { return func(o *TaskOptions) { o.RateLimit = rate } }

// WithAutoretry sets autoretry_for and the backoff: backoff is
// retry_backoff in seconds (0: none), backoffMax retry_backoff_max in
// seconds, jitter retry_jitter.
func WithAutoretry(backoff, backoffMax int, jitter bool, matchers ...func(error) bool) TaskOption {
	return func(o *TaskOptions) {
		o.AutoretryFor = append(o.AutoretryFor, matchers...)
		o.RetryBackoff = backoff
		o.RetryBackoffMax = &backoffMax
		o.RetryJitter = &jitter
	}
}

// AutoretryOn matches errors that errors.Is one of targets.
func AutoretryOn(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// AutoretryAs matches errors that errors.As finds an E in.
func AutoretryAs[E error]() func(error) bool {
	return func(err error) bool {
		var e E
		return errors.As(err, &e)
	}
}

// AutoretryPy matches *PyError values of the given Python exception type
// names (e.g. "ValueError"), like Celery's autoretry_for=(ValueError,).
func AutoretryPy(types ...string) func(error) bool {
	return func(err error) bool {
		var pe *PyError
		if !errors.As(err, &pe) {
			return false
		}
		for _, t := range types {
			if pe.Type == t {
				return true
			}
		}
		return false
	}
}

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
