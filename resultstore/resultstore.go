// Package resultstore defines Celery's task states and result metadata, and
// the interface result backends implement. The documents written are the
// ones Celery's own backends write, so Python's AsyncResult reads them
// unchanged.
package resultstore

import (
	"context"
	"time"
)

// Celery task states (celery/states.py).
const (
	Pending  = "PENDING"
	Received = "RECEIVED"
	Started  = "STARTED"
	Success  = "SUCCESS"
	Failure  = "FAILURE"
	Retry    = "RETRY"
	Revoked  = "REVOKED"
)

// Ready reports whether state is final (SUCCESS, FAILURE or REVOKED).
func Ready(state string) bool {
	return state == Success || state == Failure || state == Revoked
}

// ExceptionInfo is Celery's serialized exception: Python clients import
// Module, look up Type and re-raise it with Message as the arguments.
type ExceptionInfo struct {
	Type    string // exc_type, e.g. "ValueError"
	Module  string // exc_module, e.g. "builtins"
	Message []any  // exc_message: the exception's args
}

// Extended holds the result_extended fields. When Unknown is set all of them
// are written as null (Celery does that for unregistered tasks).
type Extended struct {
	Name    string
	Args    []any
	Kwargs  map[string]any
	Worker  string
	Retries int
	Queue   string
	Unknown bool
}

// Meta is one task state document.
type Meta struct {
	TaskID string
	Status string
	// Result is the return value, an *ExceptionInfo for exception states,
	// or the STARTED info map {"pid", "hostname"}.
	Result any
	// Traceback is the traceback text; "" is written as null.
	Traceback string
	// Children are child result tuples (AsyncResult.as_tuple() form).
	Children []any
	// DateDone is set for ready states; zero is written as null.
	DateDone time.Time
	GroupID  string
	ParentID string
	Extended *Extended

	// ReplyTo and CorrelationID address the reply on the rpc backend.
	ReplyTo       string
	CorrelationID string
	// TypedJSON asks for kombu ≥ 5.3 {"__type__", "__value__"} markers
	// when encoding Result as JSON (see kombu.JSONMode).
	TypedJSON bool
}

// Backend stores task states.
type Backend interface {
	// Store writes the given states, in order. A stored SUCCESS is never
	// overwritten. Implementations may batch the writes in one round trip.
	Store(ctx context.Context, metas ...*Meta) error
	// Get returns the stored document for taskID decoded to plain values, or
	// nil when there is none (PENDING).
	Get(ctx context.Context, taskID string) (map[string]any, error)
	// Close releases the backend's connections.
	Close() error
}
