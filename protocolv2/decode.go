package protocolv2

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/celerity-go/celerity/kombu"
)

// ErrUnknownMessage means the message is not a Celery task message: it has
// no task header and its body is not a v1 dict with a "task" key. Celery
// rejects such messages ("Received and deleted unknown message").
var ErrUnknownMessage = errors.New("protocolv2: unknown message (no task header and no v1 task body)")

// InvalidTaskError reports a task message Celery would reject as invalid:
// a missing id or task name, kwargs that are not a mapping, an unparsable
// eta/expires, a malformed body or embed. Err, when set, is the cause.
type InvalidTaskError struct {
	// Field names the offending header or body part ("" when not specific).
	Field string
	// Reason says what is wrong.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

func (e *InvalidTaskError) Error() string {
	var b strings.Builder
	b.WriteString("protocolv2: invalid task")
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *InvalidTaskError) Unwrap() error { return e.Err }

func invalid(field, format string, a ...any) *InvalidTaskError {
	return &InvalidTaskError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

// Peek is the cheap check a Python worker does before decoding the body:
// a message whose headers carry "task" is protocol v2 and name is that
// header (empty if it is not a string). Otherwise it returns ("", 0),
// meaning only decoding the body can tell (protocol v1 or not a task).
func Peek(m *kombu.Message) (name string, protocol int) {
	if m == nil {
		return "", 0
	}
	v, ok := m.Headers["task"]
	if !ok {
		return "", 0
	}
	name, _ = asString(v)
	return name, 2
}

// Decode turns a kombu message into a Task, deciding v1 versus v2 the way
// Celery's on_task_received does: a "task" header means v2; otherwise the
// body is decoded and must be a dict with "task" (v1), else the result is
// ErrUnknownMessage. reg decodes the body (decompression, content type and
// accept_content); its *kombu.ContentDisallowedError and *kombu.DecodeError
// are returned wrapped, so errors.As finds them. Message problems are
// *InvalidTaskError.
func Decode(m *kombu.Message, reg *kombu.Registry) (*Task, error) {
	if m == nil {
		return nil, errors.New("protocolv2: nil message")
	}
	if reg == nil {
		return nil, errors.New("protocolv2: nil registry")
	}
	_, v2 := m.Headers["task"]
	body, err := reg.DecodeBody(m)
	if err != nil {
		return nil, fmt.Errorf("protocolv2: decode body: %w", err)
	}
	if v2 {
		if d, ok := body.(map[string]any); ok {
			// Celery's "hybrid" message: v2 headers, v1 body dict.
			return decodeV1(m, d)
		}
		return decodeV2(m, body)
	}
	d, ok := body.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: body is %s", ErrUnknownMessage, typeName(body))
	}
	if _, ok := d["task"]; !ok {
		return nil, fmt.Errorf("%w: body dict has no task", ErrUnknownMessage)
	}
	return decodeV1(m, d)
}

func decodeV2(m *kombu.Message, body any) (*Task, error) {
	t := &Task{Protocol: 2, UTC: true}
	if err := t.setHeaders(m.Headers); err != nil {
		return nil, err
	}
	return t, t.setBodyV2(body)
}

// setBodyV2 fills args, kwargs and the embed from a v2 body.
func (t *Task) setBodyV2(body any) error {
	parts, ok := body.([]any)
	if !ok {
		return invalid("body", "got %s, want [args, kwargs, embed]", typeName(body))
	}
	if len(parts) != 2 && len(parts) != 3 {
		return invalid("body", "got a list of %d items, want [args, kwargs, embed]", len(parts))
	}
	if err := t.setArgs(parts[0]); err != nil {
		return err
	}
	if err := t.setKwargs(parts[1]); err != nil {
		return err
	}
	if len(parts) == 3 && parts[2] != nil {
		embed, ok := parts[2].(map[string]any)
		if !ok {
			return invalid("embed", "got %s, want a dict", typeName(parts[2]))
		}
		if err := t.setEmbed(embed); err != nil {
			return err
		}
	}
	return nil
}

// v1HeaderKeys are the v1 body keys that are v2 headers (hybrid_to_proto2
// copies them); the other known v1 keys are handled in decodeV1.
var v1HeaderKeys = map[string]bool{
	"lang": true, "task": true, "id": true, "root_id": true, "parent_id": true,
	"group": true, "group_index": true, "shadow": true, "eta": true,
	"expires": true, "retries": true, "timelimit": true, "argsrepr": true,
	"kwargsrepr": true, "origin": true, "ignore_result": true,
}

// decodeV1 handles a v1 body dict (and the hybrid form). As in Celery's
// proto1_to_proto2/hybrid_to_proto2 the body supplies the header fields and
// the message headers override them; "taskset" is the legacy name of
// "group" and is used when "group" is null or absent.
func decodeV1(m *kombu.Message, d map[string]any) (*Task, error) {
	t := &Task{Protocol: 1, UTC: true}
	h := make(map[string]any, len(d)+len(m.Headers))
	for k, v := range d {
		switch {
		case v1HeaderKeys[k]:
			h[k] = v
		case k == "args" || k == "kwargs" || k == "callbacks" || k == "errbacks" ||
			k == "chord" || k == "chain" || k == "taskset" || k == "utc":
		default:
			h[k] = v // unknown body keys end up in Extra
		}
	}
	if h["group"] == nil {
		if ts, ok := d["taskset"]; ok && ts != nil {
			h["group"] = ts
		}
	}
	for k, v := range m.Headers {
		h[k] = v
	}
	if err := t.setHeaders(h); err != nil {
		return nil, err
	}
	// Stamped speaks of the message's headers, not of v1 body keys.
	t.Stamped = hasKey(m.Headers, "stamped_headers")
	if u, ok := d["utc"]; ok {
		b, ok := truthy(u)
		if !ok {
			return nil, invalid("utc", "got %s, want a bool", typeName(u))
		}
		t.UTC = b
	}
	if a, ok := d["args"]; ok {
		if err := t.setArgs(a); err != nil {
			return nil, err
		}
	}
	if t.Args == nil {
		t.Args = []any{}
	}
	kw, ok := d["kwargs"]
	if !ok {
		kw = map[string]any{}
	}
	if err := t.setKwargs(kw); err != nil {
		return nil, err
	}
	embed := map[string]any{"callbacks": d["callbacks"], "errbacks": d["errbacks"], "chord": d["chord"]}
	if err := t.setEmbed(embed); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Task) setArgs(v any) error {
	switch a := v.(type) {
	case []any:
		t.Args = a
		return nil
	}
	return invalid("args", "got %s, want a list", typeName(v))
}

func (t *Task) setKwargs(v any) error {
	switch kw := v.(type) {
	case map[string]any:
		t.Kwargs = kw
		return nil
	}
	return invalid("kwargs", "task keyword arguments must be a mapping, got %s", typeName(v))
}

func (t *Task) setEmbed(embed map[string]any) error {
	var err error
	if t.Callbacks, err = signatureList(embed["callbacks"]); err != nil {
		return &InvalidTaskError{Field: "callbacks", Err: err}
	}
	if t.Errbacks, err = signatureList(embed["errbacks"]); err != nil {
		return &InvalidTaskError{Field: "errbacks", Err: err}
	}
	if t.Chain, err = signatureList(embed["chain"]); err != nil {
		return &InvalidTaskError{Field: "chain", Err: err}
	}
	if c := embed["chord"]; c != nil {
		s, err := SignatureFromValue(c)
		if err != nil {
			return &InvalidTaskError{Field: "chord", Err: err}
		}
		t.Chord = &s
	}
	return nil
}

// setHeaders fills the header fields from h. Unknown keys go to Extra.
func (t *Task) setHeaders(h map[string]any) error {
	for k, v := range h {
		if err := t.setHeader(k, v); err != nil {
			return err
		}
	}
	return t.checkRequired(hasKey(h, "task"), hasKey(h, "id"))
}

func hasKey(h map[string]any, k string) bool {
	_, ok := h[k]
	return ok
}

// checkRequired reports a missing task or id header.
func (t *Task) checkRequired(seenTask, seenID bool) error {
	if !seenTask {
		return invalid("task", "missing")
	}
	if !seenID {
		return invalid("id", "missing")
	}
	return nil
}

// stringField returns the field a string header fills and whether the
// header must be a non-empty string (else null is allowed); nil for the
// other headers.
func (t *Task) stringField(k string) (field *string, required bool) {
	switch k {
	case "task":
		return &t.Name, true
	case "id":
		return &t.ID, true
	case "lang":
		return &t.Lang, false
	case "shadow":
		return &t.Shadow, false
	case "group":
		return &t.Group, false
	case "root_id":
		return &t.RootID, false
	case "parent_id":
		return &t.ParentID, false
	case "argsrepr":
		return &t.ArgsRepr, false
	case "kwargsrepr":
		return &t.KwargsRepr, false
	case "origin":
		return &t.Origin, false
	}
	return nil, false
}

// setHeader fills the field header k names from v; an unknown k goes to
// Extra.
func (t *Task) setHeader(k string, v any) error {
	if f, required := t.stringField(k); f != nil {
		var err error
		if required {
			*f, err = reqString(k, v)
		} else {
			*f, err = optString(k, v)
		}
		return err
	}
	var err error
	switch k {
	case "eta":
		t.ETA, err = optTime(k, v)
	case "expires":
		t.Expires, err = optTime(k, v)
	case "group_index":
		if v != nil {
			i, ok := asInt(v)
			if !ok || !intFits(i) {
				return invalid(k, "got %s, want an integer", typeName(v))
			}
			n := int(i)
			t.GroupIndex = &n
		}
	case "retries":
		t.Retries, err = optInt(k, v)
	case "replaced_task_nesting":
		t.ReplacedTaskNesting, err = optInt(k, v)
	case "timelimit":
		t.TimeLimit, err = parseTimeLimit(v)
	case "ignore_result":
		b, ok := truthy(v)
		if !ok {
			return invalid(k, "got %s, want a bool", typeName(v))
		}
		t.IgnoreResult = b
	case "stamped_headers":
		t.Stamped = true
		t.StampedHeaders, err = parseStringList(k, v)
	case "stamps":
		switch s := v.(type) {
		case nil:
		case map[string]any:
			t.Stamps = s
		default:
			return invalid(k, "got %s, want a dict", typeName(v))
		}
	case "compression", "redelivered":
		// transport-level, re-added by whoever re-publishes
	default:
		if t.Extra == nil {
			t.Extra = make(map[string]any)
		}
		t.Extra[k] = v
	}
	return err
}

func reqString(k string, v any) (string, error) {
	s, ok := asString(v)
	if !ok {
		return "", invalid(k, "got %s, want a string", typeName(v))
	}
	if s == "" {
		return "", invalid(k, "empty")
	}
	return s, nil
}

func optString(k string, v any) (string, error) {
	if v == nil {
		return "", nil
	}
	s, ok := asString(v)
	if !ok {
		return "", invalid(k, "got %s, want a string", typeName(v))
	}
	return s, nil
}

func optInt(k string, v any) (int, error) {
	if v == nil {
		return 0, nil
	}
	i, ok := asInt(v)
	if !ok || !intFits(i) {
		return 0, invalid(k, "got %s, want an integer", typeName(v))
	}
	return int(i), nil
}

// optTime parses eta/expires. Celery also lets a producer put a datetime
// object there (yaml/typed JSON decode to time.Time); those are accepted
// too.
func optTime(k string, v any) (time.Time, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, nil
	case string:
		if x == "" { // Celery: "if not dt: return None"
			return time.Time{}, nil
		}
		t, err := ParseTime(x)
		if err != nil {
			return time.Time{}, &InvalidTaskError{Field: k, Reason: "invalid " + k + " value", Err: err}
		}
		return t, nil
	case time.Time:
		return x, nil
	}
	return time.Time{}, invalid(k, "got %s, want an ISO 8601 string", typeName(v))
}

func parseTimeLimit(v any) (TimeLimit, error) {
	if v == nil {
		return TimeLimit{}, nil
	}
	l, ok := v.([]any)
	if !ok || len(l) != 2 {
		return TimeLimit{}, invalid("timelimit", "got %s, want [hard, soft]", typeName(v))
	}
	var tl TimeLimit
	for i, e := range l {
		if e == nil {
			continue
		}
		f, ok := asFloat(e)
		if !ok {
			return TimeLimit{}, invalid("timelimit", "item %d is %s, want a number or null", i, typeName(e))
		}
		if i == 0 {
			tl.Hard = &f
		} else {
			tl.Soft = &f
		}
	}
	return tl, nil
}

func parseStringList(k string, v any) ([]string, error) {
	switch l := v.(type) {
	case nil:
		return nil, nil
	case []any:
		out := make([]string, len(l))
		for i, e := range l {
			s, ok := asString(e)
			if !ok {
				return nil, invalid(k, "item %d is %s, want a string", i, typeName(e))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, invalid(k, "got %s, want a list of strings", typeName(v))
}
