package resultstore

import "context"

// ChordPart is one finished chord header task, as recorded by
// on_chord_part_return.
type ChordPart struct {
	GroupID string
	// GroupIndex is the task's group_index header; nil scores the part
	// +inf (Celery 5.2 clients send null for plain groups).
	GroupIndex *int
	TaskID     string
	State      string
	// Result is the return value or an *ExceptionInfo.
	Result any
}

// ChordMember is one decoded part of a completed chord.
type ChordMember struct {
	TaskID string
	State  string
	// Result is the decoded return value; for exception states
	// (FAILURE, RETRY, REVOKED) a recognised exception dict is an
	// *ExceptionInfo.
	Result any
}

// Failed reports whether the member's state makes the chord fail
// (Celery's PROPAGATE_STATES: FAILURE and REVOKED).
func (m ChordMember) Failed() bool {
	return m.State == Failure || m.State == Revoked
}

// ChordStatus is the outcome of ChordPartReturn.
type ChordStatus struct {
	// Count is the number of parts recorded so far.
	Count int64
	// Size is the chord size from <gid>.s plus the <gid>.t adjustment;
	// SizeKnown is false when <gid>.s is missing (the chord never fires).
	Size      int64
	SizeKnown bool
	// Ready is set for exactly the part that completed the chord (also
	// when that part is recorded again before ChordComplete: its first
	// reply may have been lost); the caller must then fire the body and
	// call ChordComplete.
	Ready bool
	// Members are the recorded parts in group_index order (only when Ready).
	Members []ChordMember
	// SavedGroup is the decoded celery-taskset-meta-<gid> document when
	// the client saved one (complex headers: groups inside the header);
	// the flat Members then do not have the intended nesting.
	SavedGroup map[string]any
}

// Results returns the members' results in order.
func (s *ChordStatus) Results() []any {
	out := make([]any, len(s.Members))
	for i, m := range s.Members {
		out[i] = m.Result
	}
	return out
}

// ChordBackend is implemented by backends that keep chord state the way
// Celery's Redis backend does (on_chord_part_return), so the worker that
// finishes the last header task fires the chord body.
type ChordBackend interface {
	// SetChordSize records how many header tasks the chord has.
	SetChordSize(ctx context.Context, groupID string, size int) error
	// ChordPartReturn records one finished header task; the returned
	// status is Ready for exactly the part that completed the chord.
	ChordPartReturn(ctx context.Context, p ChordPart) (*ChordStatus, error)
	// ChordComplete removes the chord state after the body was published
	// (or its failure stored).
	ChordComplete(ctx context.Context, groupID string) error
}
