package protocolv2

import (
	"errors"
	"fmt"
)

// Signature is Celery's serialized signature (celery/canvas.py: Signature),
// the dict found in embed callbacks/errbacks/chain/chord and in nested
// canvas options. Complex signatures (group, chain, chord, ...) stay
// Signatures: their members live in Kwargs as nested dicts and are read
// with Tasks, Header and ChordBody.
type Signature struct {
	// Task is the task name ("celery.group", "celery.chain",
	// "celery.chord" for complex signatures).
	Task string
	// Args are the positional arguments; a non-immutable signature gets the
	// parent's result prepended when applied as a callback or chain step.
	Args []any
	// Kwargs are the keyword arguments (for complex signatures: "tasks",
	// "header", "body", "kwargs").
	Kwargs map[string]any
	// Options are apply_async options: task_id, reply_to, group_id,
	// group_index, chord, root_id, parent_id, queue, priority, link, ...
	Options map[string]any
	// SubtaskType is "" for a plain task, else "group", "chain", "chord",
	// "chunks", "xmap" or "xstarmap".
	SubtaskType string
	// Immutable marks .si() signatures: the parent's result is not
	// prepended.
	Immutable bool
	// Extra keeps keys Celery may add that are not listed above (such as
	// chord_size) so the dict round-trips.
	Extra map[string]any
}

// ErrNotSignature is wrapped by errors from SignatureFromValue and the
// nested-signature helpers when a value is not a valid signature dict.
var ErrNotSignature = errors.New("protocolv2: not a signature")

func sigErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotSignature}, a...)...)
}

// SignatureFromValue converts a decoded signature dict (map[string]any)
// into a Signature. Missing or null args, kwargs and options become empty;
// task and subtask_type may be null. Other keys go to Extra.
func SignatureFromValue(v any) (Signature, error) {
	d, ok := v.(map[string]any)
	if !ok {
		return Signature{}, sigErr("got %s, want a dict", typeName(v))
	}
	var s Signature
	for k, val := range d {
		switch k {
		case "task":
			if val == nil {
				continue
			}
			str, ok := asString(val)
			if !ok {
				return Signature{}, sigErr("task is %s, want a string", typeName(val))
			}
			s.Task = str
		case "args":
			switch a := val.(type) {
			case nil:
			case []any:
				s.Args = a
			default:
				return Signature{}, sigErr("args is %s, want a list", typeName(val))
			}
		case "kwargs":
			switch m := val.(type) {
			case nil:
			case map[string]any:
				s.Kwargs = m
			default:
				return Signature{}, sigErr("kwargs is %s, want a dict", typeName(val))
			}
		case "options":
			switch m := val.(type) {
			case nil:
			case map[string]any:
				s.Options = m
			default:
				return Signature{}, sigErr("options is %s, want a dict", typeName(val))
			}
		case "subtask_type":
			if val == nil {
				continue
			}
			str, ok := asString(val)
			if !ok {
				return Signature{}, sigErr("subtask_type is %s, want a string", typeName(val))
			}
			s.SubtaskType = str
		case "immutable":
			b, ok := truthy(val)
			if !ok {
				return Signature{}, sigErr("immutable is %s, want a bool", typeName(val))
			}
			s.Immutable = b
		default:
			if s.Extra == nil {
				s.Extra = make(map[string]any)
			}
			s.Extra[k] = val
		}
	}
	return s, nil
}

// Value returns the dict form Celery serializes: task, args, kwargs,
// options, subtask_type (null when empty), immutable, plus Extra. Nil
// args/kwargs/options are written as [] / {} / {}.
func (s Signature) Value() map[string]any {
	m := make(map[string]any, 6+len(s.Extra))
	for k, v := range s.Extra {
		m[k] = v
	}
	var task any
	if s.Task != "" {
		task = s.Task
	}
	m["task"] = task
	args := s.Args
	if args == nil {
		args = []any{}
	}
	m["args"] = args
	kwargs := s.Kwargs
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	m["kwargs"] = kwargs
	opts := s.Options
	if opts == nil {
		opts = map[string]any{}
	}
	m["options"] = opts
	var st any
	if s.SubtaskType != "" {
		st = s.SubtaskType
	}
	m["subtask_type"] = st
	m["immutable"] = s.Immutable
	return m
}

// IsComplex reports whether s is a canvas primitive (group, chain, chord,
// chunks, xmap, xstarmap) rather than a single task call.
func (s Signature) IsComplex() bool { return s.SubtaskType != "" }

// Tasks returns the member signatures of a group or chain signature
// (kwargs.tasks), in wire order.
func (s Signature) Tasks() ([]Signature, error) {
	v, ok := s.Kwargs["tasks"]
	if !ok {
		return nil, sigErr("%q has no kwargs.tasks", s.Task)
	}
	return signatureList(v)
}

// Header returns the header (a group signature) of a chord signature
// (kwargs.header).
func (s Signature) Header() (Signature, error) {
	v, ok := s.Kwargs["header"]
	if !ok {
		return Signature{}, sigErr("%q has no kwargs.header", s.Task)
	}
	return SignatureFromValue(v)
}

// ChordBody returns the body (callback) of a chord signature (kwargs.body).
func (s Signature) ChordBody() (Signature, error) {
	v, ok := s.Kwargs["body"]
	if !ok {
		return Signature{}, sigErr("%q has no kwargs.body", s.Task)
	}
	return SignatureFromValue(v)
}

// TaskID returns options.task_id, the id the publishing client already
// handed out for this step ("" when absent).
func (s Signature) TaskID() string { return s.optString("task_id") }

// GroupID returns options.group_id ("" when absent).
func (s Signature) GroupID() string { return s.optString("group_id") }

// ReplyTo returns options.reply_to ("" when absent).
func (s Signature) ReplyTo() string { return s.optString("reply_to") }

// RootID returns options.root_id ("" when absent).
func (s Signature) RootID() string { return s.optString("root_id") }

// ParentID returns options.parent_id ("" when absent).
func (s Signature) ParentID() string { return s.optString("parent_id") }

// Queue returns options.queue when it is a queue name ("" otherwise).
func (s Signature) Queue() string { return s.optString("queue") }

// GroupIndex returns options.group_index and whether it is set.
func (s Signature) GroupIndex() (int, bool) { return s.optInt("group_index") }

// Priority returns options.priority and whether it is set.
func (s Signature) Priority() (int, bool) { return s.optInt("priority") }

// ChordOption returns options.chord (the chord body a header member reports
// to), or nil when absent.
func (s Signature) ChordOption() (*Signature, error) {
	v, ok := s.Options["chord"]
	if !ok || v == nil {
		return nil, nil
	}
	c, err := SignatureFromValue(v)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// Links returns options.link (callbacks), which Celery stores as a single
// signature or a list of them.
func (s Signature) Links() ([]Signature, error) { return s.optSignatures("link") }

// ErrorLinks returns options.link_error (errbacks).
func (s Signature) ErrorLinks() ([]Signature, error) { return s.optSignatures("link_error") }

func (s Signature) optString(k string) string {
	str, _ := asString(s.Options[k])
	return str
}

func (s Signature) optInt(k string) (int, bool) {
	i, ok := asInt(s.Options[k])
	if !ok || !intFits(i) {
		return 0, false
	}
	return int(i), true
}

func (s Signature) optSignatures(k string) ([]Signature, error) {
	v := s.Options[k]
	if m, ok := v.(map[string]any); ok {
		one, err := SignatureFromValue(m)
		if err != nil {
			return nil, err
		}
		return []Signature{one}, nil
	}
	return signatureList(v)
}

// signatureList converts null or a list of signature dicts.
func signatureList(v any) ([]Signature, error) {
	switch l := v.(type) {
	case nil:
		return nil, nil
	case []any:
		out := make([]Signature, len(l))
		for i, e := range l {
			s, err := SignatureFromValue(e)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, sigErr("got %s, want a list of signatures", typeName(v))
}

// signatureValues is the inverse of signatureList: nil stays null.
func signatureValues(l []Signature) any {
	if l == nil {
		return nil
	}
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s.Value()
	}
	return out
}

// typeName names v's type the way error messages in this package do.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string, []byte:
		return "a string"
	case bool:
		return "a bool"
	case []any:
		return "a list"
	case map[string]any:
		return "a dict"
	}
	if _, ok := asFloat(v); ok {
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}
