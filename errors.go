package celerity

import (
	"errors"
	"fmt"
	"time"
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
}

// Error describes the retry the way Celery logs it.
func (e *RetryError) Error() string {
	when := "default delay"
	switch {
	case !e.ETA.IsZero():
		when = e.ETA.Format(time.RFC3339Nano)
	case e.Countdown > 0:
		when = formatSeconds(e.Countdown.Seconds()) + "s"
	}
	if e.Err != nil {
		return fmt.Sprintf("Retry in %s: %v", when, e.Err)
	}
	return "Retry in " + when
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

// ErrIgnore acknowledges the message and stores no result (Celery's Ignore).
var ErrIgnore = errors.New("celerity: task ignored")
