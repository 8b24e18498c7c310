package celerity

import "time"

// Task event types, named as Celery's events (celery/events).
const (
	EventTaskReceived  = "task-received"
	EventTaskStarted   = "task-started"
	EventTaskSucceeded = "task-succeeded"
	EventTaskFailed    = "task-failed"
	EventTaskRetried   = "task-retried"
	EventTaskRevoked   = "task-revoked"
	EventTaskRejected  = "task-rejected"
)

// TaskEvent describes one step in a task's life, for monitoring (Celery
// events, metrics, tracing). Observers must not modify it or keep Request
// beyond the call.
type TaskEvent struct {
	Type     string // one of the EventTask* constants
	Time     time.Time
	TaskID   string
	TaskName string
	// Request is the decoded task; nil for a message that could not be
	// decoded (task-rejected of a bad message, task-failed of an
	// unregistered task).
	Request *Request
	// Result is the return value (task-succeeded).
	Result any
	// Runtime is how long the handler ran (task-succeeded, task-failed).
	Runtime time.Duration
	// Exception is repr() of the exception (task-failed, task-retried),
	// e.g. "ValueError('boom')"; Traceback its traceback text.
	Exception string
	Traceback string
	// Expired and Terminated qualify task-revoked; Requeue task-rejected.
	Expired    bool
	Terminated bool
	Requeue    bool
}

// Observer receives task events. Calls come from the worker's goroutines,
// concurrently, and must return quickly (queue work elsewhere).
type Observer interface {
	TaskEvent(ev *TaskEvent)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(ev *TaskEvent)

// TaskEvent calls f(ev).
func (f ObserverFunc) TaskEvent(ev *TaskEvent) { f(ev) }

// TaskInfo describes a task the worker holds, as `celery inspect active`,
// `reserved` and `scheduled` report it.
type TaskInfo struct {
	ID           string
	Name         string
	Args         []any
	Kwargs       map[string]any
	Hostname     string
	TimeStart    time.Time // zero unless running
	Acknowledged bool
	DeliveryInfo DeliveryInfo
	ETA          time.Time // scheduled tasks
	Priority     int
}

// Stats are the worker's counters, as `celery inspect stats` and the
// worker-heartbeat event report them.
type Stats struct {
	Hostname string
	PID      int
	Started  time.Time
	// Concurrency is the number of executors now (pool_grow, pool_shrink
	// and the autoscaler change it); Prefetch the prefetch count, with
	// the increments for tasks held for their ETA.
	Concurrency int
	Prefetch    int
	// Autoscaler is set when the worker autoscales.
	Autoscaler *AutoscaleInfo
	Active     int              // tasks running now
	Processed  int64            // tasks finished since start
	Total      map[string]int64 // finished tasks by name
}

// observed reports whether anyone listens to task events, so the hot path
// builds no event otherwise.
func (p *pipeline) observed() bool { return len(p.w.cfg.Observers) > 0 }

// emit hands ev to every observer.
func (p *pipeline) emit(ev *TaskEvent) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if r := ev.Request; r != nil {
		ev.TaskID, ev.TaskName = r.ID, r.Name
	}
	for _, o := range p.w.cfg.Observers {
		o.TaskEvent(ev)
	}
}
