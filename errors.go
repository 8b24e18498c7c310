package celerity

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/celerity-go/celerity/protocolv2"
)

// PyError is an error that names the Python exception a Python client
// should see raised from AsyncResult.get(): exc_module.exc_type(*args).
type PyError struct {
	Type   string // e.g. "ValueError"
	Module string // e.g. "builtins"
	Args   []any  // the exception's args; usually one message string
}

// Error returns "Type: message" like Python's traceback last line.
func (e *PyError) Error() string {
	switch len(e.Args) {
	case 0:
		return e.Type
	case 1:
		return fmt.Sprintf("%s: %v", e.Type, e.Args[0])
	default:
		return fmt.Sprintf("%s: %v", e.Type, e.Args)
	}
}

// NewPyError returns an error that reaches Python clients as
// module.typ(*args).
func NewPyError(module, typ string, args ...any) *PyError {
	return &PyError{Type: typ, Module: module, Args: args}
}

// ValueError returns an error a Python client sees as ValueError(msg).
func ValueError(msg string) *PyError { return NewPyError("builtins", "ValueError", msg) }

// TypeError returns an error a Python client sees as TypeError(msg).
func TypeError(msg string) *PyError { return NewPyError("builtins", "TypeError", msg) }

// KeyError returns an error a Python client sees as KeyError(key).
func KeyError(key string) *PyError { return NewPyError("builtins", "KeyError", key) }

// RuntimeError returns an error a Python client sees as RuntimeError(msg).
func RuntimeError(msg string) *PyError { return NewPyError("builtins", "RuntimeError", msg) }

// pyException maps any error to the Python exception stored for it. Errors
// that do not name one become builtins.Exception with the error text.
func pyException(err error) *PyError {
	var pe *PyError
	if errors.As(err, &pe) {
		return pe
	}
	return &PyError{Type: "Exception", Module: "builtins", Args: []any{err.Error()}}
}

// RetryError asks the worker to publish the task again (Celery's
// self.retry()). Build it with Retry.
type RetryError struct {
	// Err is the reason, stored with the RETRY state; nil stores Celery's
	// Retry exception.
	Err error
	// Countdown delays the new attempt. Zero with a zero ETA means the
	// task's default retry delay.
	Countdown time.Duration
	// ETA is an absolute time for the new attempt; it wins over Countdown.
	ETA time.Time
	// MaxRetries overrides the task's max_retries when set; a negative
	// value means retry forever (Python's None).
	MaxRetries *int

	// immediate marks an explicit countdown of 0 (autoretry's backoff can
	// compute one), which retries at once instead of after the default
	// delay.
	immediate bool
}

// Error describes the retry the way Celery logs it: "Retry in 1s:
// ValueError('x')" or "Retry at 2026-01-02 03:04:05+00:00".
func (e *RetryError) Error() string {
	when := "in default delay"
	switch {
	case !e.ETA.IsZero():
		when = "at " + pyDatetimeStr(e.ETA)
	case e.Countdown > 0 || e.immediate:
		when = "in " + pySeconds(e.Countdown) + "s"
	}
	return retryText(when, e.Err)
}

// retryText is str(celery.exceptions.Retry): "Retry <when>[: repr(exc)]".
func retryText(when string, reason error) string {
	if reason != nil {
		return "Retry " + when + ": " + pyExcRepr(pyException(reason))
	}
	return "Retry " + when
}

// pySeconds renders a duration in seconds the way Python prints the number
// a Celery user passed: 1 → "1", 0.2 → "0.2".
func pySeconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return strconv.FormatFloat(d.Seconds(), 'g', -1, 64)
}

// pySecondsValue is the seconds value Python would hold: an int when whole
// (time_limit=2), else a float.
func pySecondsValue(d time.Duration) any {
	if d%time.Second == 0 {
		return int64(d / time.Second)
	}
	return d.Seconds()
}

// pyDatetimeStr renders str(datetime) for an aware datetime.
func pyDatetimeStr(t time.Time) string {
	layout := "2006-01-02 15:04:05"
	if t.Nanosecond()/1000 != 0 {
		layout += ".000000"
	}
	return t.Format(layout + "-07:00")
}

// Unwrap returns the reason.
func (e *RetryError) Unwrap() error { return e.Err }

// Retry returns an error that makes the worker publish the task again after
// countdown (0: the task's default_retry_delay), storing RETRY with err.
func Retry(err error, countdown time.Duration) *RetryError {
	return &RetryError{Err: err, Countdown: countdown}
}

// RejectError settles the message with a reject instead of a result
// (Celery's Reject exception).
type RejectError struct {
	Reason  string
	Requeue bool
}

// Error returns the reason.
func (e *RejectError) Error() string { return "rejected: " + e.Reason }

// Reject returns an error that rejects the task message, requeueing it
// when requeue is set. No result is stored.
func Reject(reason string, requeue bool) *RejectError {
	return &RejectError{Reason: reason, Requeue: requeue}
}

// ErrSoftTimeLimitExceeded is the cause a handler's context is cancelled
// with when its soft time limit passes. Returned from the handler (for
// example as context.Cause(ctx)) it reaches Python clients as
// SoftTimeLimitExceeded(), the exception Celery raises inside the task.
var ErrSoftTimeLimitExceeded = &PyError{Type: "SoftTimeLimitExceeded", Module: "billiard.exceptions", Args: []any{}}

// ErrTimeLimitExceeded is the cause a handler's context is cancelled with
// when its hard time limit passes (the worker has already stored FAILURE
// TimeLimitExceeded and moved on; whatever the handler returns is
// discarded).
var ErrTimeLimitExceeded = &PyError{Type: "TimeLimitExceeded", Module: "billiard.exceptions", Args: []any{}}

// timeLimitExceeded is the stored FAILURE of a hard time limit:
// TimeLimitExceeded(<seconds>).
func timeLimitExceeded(limit time.Duration) *PyError {
	return &PyError{Type: "TimeLimitExceeded", Module: "billiard.exceptions", Args: []any{pySecondsValue(limit)}}
}

// maxRetriesExceeded is Celery's MaxRetriesExceededError for a task that
// retried without a reason.
func maxRetriesExceeded(name, id string, args []any, kwargs map[string]any) *PyError {
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	msg := fmt.Sprintf("Can't retry %s[%s] args:%s kwargs:%s", name, id,
		protocolv2.SafeRepr(protocolv2.Tuple(args), 0), protocolv2.SafeRepr(kwargs, 0))
	return &PyError{Type: "MaxRetriesExceededError", Module: "celery.exceptions", Args: []any{msg}}
}

// ErrIgnore acknowledges the message and stores no result (Celery's Ignore).
var ErrIgnore = errors.New("celerity: task ignored")
