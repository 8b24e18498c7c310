package protocolv2

import "time"

// Task is one Celery task message, protocol v1 or v2, with every field the
// worker needs typed. Encode writes it back as protocol v2.
type Task struct {
	// Protocol is 2 when the body had the v2 layout [args, kwargs, embed]
	// and 1 when it was a v1 body dict (also for Celery's "hybrid" message:
	// v2 headers with a v1 body dict).
	Protocol int

	// ID is the task id (header id). Required.
	ID string
	// Name is the registered task name (header task). Required.
	Name string
	// Shadow is the display name for logs and events ("" when null).
	Shadow string
	// Lang is the producer language, "py" for Celery ("" when absent).
	Lang string

	// ETA is when the task may run; the zero Time means none. It is parsed
	// with ParseTime: an offset-aware string keeps its offset (time.UTC
	// for +00:00); a naive string gets the kombu.Naive location (UTC+0),
	// so it compares as UTC the way Celery's maybe_make_aware reads it,
	// and IsNaive(ETA) lets a worker apply other semantics (protocol v1
	// with UTC false: naive means the app's time zone). Encode writes a
	// naive ETA back without offset.
	ETA time.Time
	// Expires is when the task expires, with the same rules as ETA.
	Expires time.Time

	// Group is the group id ("" when null).
	Group string
	// GroupIndex is the position in the group; nil when null (plain groups
	// in Celery 5.2 carry null, chord headers 0..n-1).
	GroupIndex *int
	// Retries counts earlier attempts (0 on first publish).
	Retries int
	// TimeLimit is header timelimit [hard, soft].
	TimeLimit TimeLimit

	// RootID is the id of the first task of the workflow ("" when null).
	RootID string
	// ParentID is the id of the task that published this one ("" when null).
	ParentID string
	// ArgsRepr is the Python repr of args, for logs and events.
	ArgsRepr string
	// KwargsRepr is the Python repr of kwargs, for logs and events.
	KwargsRepr string
	// Origin is the sender's node name (gen<pid>@<host> for clients).
	Origin string
	// IgnoreResult is the per-call ignore_result.
	IgnoreResult bool

	// ReplacedTaskNesting is the Celery 5.4+ header (0 when absent).
	ReplacedTaskNesting int
	// StampedHeaders is the Celery 5.3+ header (nil when null/absent).
	StampedHeaders []string
	// Stamps is the Celery 5.3+ header (nil when absent; Celery sends {}).
	//
	// Encode writes replaced_task_nesting, stamped_headers and stamps (the
	// 5.3+ header set) only when Stamps or StampedHeaders is non-nil or
	// ReplacedTaskNesting is non-zero, so a decoded 5.2 message re-encodes
	// with the 5.2 header set and a 5.6 one with the 5.6 set.
	Stamps map[string]any
	// Stamped reports that the message had a stamped_headers header, null
	// included: its producer speaks Celery 5.3+'s protocol, which reads
	// kombu's JSON type markers. Encode writes the 5.3+ header set when
	// it is set, too.
	Stamped bool

	// UTC is the v1 body's utc flag (default true); always true for v2.
	UTC bool

	// Extra holds every header this struct does not name (custom headers
	// from apply_async(headers=...), and for v1 unknown body keys), so a
	// retry re-publishes them. The transport-level headers "compression"
	// and "redelivered" are not kept.
	Extra map[string]any

	// Args are the positional arguments.
	Args []any
	// Kwargs are the keyword arguments.
	Kwargs map[string]any
	// Callbacks are embed.callbacks (link=), run on success.
	Callbacks []Signature
	// Errbacks are embed.errbacks (link_error=), run on failure.
	Errbacks []Signature
	// Chain is embed.chain as on the wire: the remaining steps in reverse
	// order, so the next step is the last element.
	Chain []Signature
	// Chord is embed.chord, the chord body this task is a header member of.
	Chord *Signature
}

// TimeLimit is Celery's [hard, soft] time limit pair in seconds. A nil
// pointer means unset (null on the wire), which is distinct from 0.
type TimeLimit struct {
	Hard *float64
	Soft *float64
}

// Seconds returns a pointer to s, for filling TimeLimit.
func Seconds(s float64) *float64 { return &s }

// DisplayName is the name Celery logs and reports: Shadow when set, else
// Name.
func (t *Task) DisplayName() string {
	if t.Shadow != "" {
		return t.Shadow
	}
	return t.Name
}
