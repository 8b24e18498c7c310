package resultstore

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/celerity-go/celerity/kombu"
)

// Style selects the version-dependent details of the meta document.
//
// The zero Style is the Celery 5.2 form: a naive UTC date_done
// ("2026-11-26T07:56:36.430742") and plain kombu 5.2 JSON. Every Python
// Celery version parses that form, so it is the default.
type Style struct {
	// AwareDateDone writes date_done with its UTC offset, as Celery ≥ 5.4
	// does ("2026-11-26T08:01:13.594662+00:00").
	AwareDateDone bool
	// Location is the zone an aware date_done is written in (Celery ≥ 5.5
	// uses the app timezone). Nil means UTC. Ignored unless AwareDateDone.
	Location *time.Location
	// JSON selects how values without a JSON type (dates, decimals, UUIDs,
	// bytes) are written. A Meta with TypedJSON set always uses
	// kombu.JSONTyped.
	JSON kombu.JSONMode
}

// Style52 is the Celery 5.2/5.3 form: naive UTC date_done, plain JSON.
var Style52 = Style{}

// Style56 is the Celery 5.6 form with a UTC app timezone: aware date_done
// and kombu ≥ 5.3 typed JSON markers.
var Style56 = Style{AwareDateDone: true, JSON: kombu.JSONTyped}

func (s Style) mode(m *Meta) kombu.JSONMode {
	if m.TypedJSON {
		return kombu.JSONTyped
	}
	return s.JSON
}

// ErrNoTaskID is returned when a Meta has an empty TaskID.
var ErrNoTaskID = errors.New("resultstore: empty task id")

// AppendMeta appends the JSON task meta document for m to dst, byte for
// byte as Celery's key-value backends write it (Python json.dumps
// separators, ASCII-only). Keys come in Celery's order: status, result,
// traceback, children, date_done, group_id and parent_id when set, the
// result_extended fields when m.Extended is set, then task_id.
//
// An *ExceptionInfo (or ExceptionInfo) Result is written as
// {"exc_type", "exc_message", "exc_module"}; an empty Traceback and a zero
// DateDone are written as null; nil Children as [].
func AppendMeta(dst []byte, m *Meta, style Style) ([]byte, error) {
	if m.TaskID == "" {
		return dst, ErrNoTaskID
	}
	mode := style.mode(m)
	var err error
	dst = append(dst, `{"status": `...)
	dst = appendString(dst, m.Status)
	dst = append(dst, `, "result": `...)
	if dst, err = appendResult(dst, m.Result, mode); err != nil {
		return dst, err
	}
	dst = append(dst, `, "traceback": `...)
	dst = appendNullableString(dst, m.Traceback)
	dst = append(dst, `, "children": `...)
	if dst, err = appendList(dst, m.Children, mode); err != nil {
		return dst, fmt.Errorf("resultstore: children: %w", err)
	}
	dst = append(dst, `, "date_done": `...)
	dst = appendDateDone(dst, m.DateDone, style)
	if m.GroupID != "" {
		dst = append(dst, `, "group_id": `...)
		dst = appendString(dst, m.GroupID)
	}
	if m.ParentID != "" {
		dst = append(dst, `, "parent_id": `...)
		dst = appendString(dst, m.ParentID)
	}
	if x := m.Extended; x != nil {
		if dst, err = appendExtended(dst, x, mode); err != nil {
			return dst, err
		}
	}
	dst = append(dst, `, "task_id": `...)
	dst = appendString(dst, m.TaskID)
	return append(dst, '}'), nil
}

// AppendRPCMeta appends the document the rpc:// backend sends for m:
// task_id, status, result, traceback, children (no date_done, no
// group/parent ids, no extended fields).
func AppendRPCMeta(dst []byte, m *Meta, style Style) ([]byte, error) {
	if m.TaskID == "" {
		return dst, ErrNoTaskID
	}
	mode := style.mode(m)
	var err error
	dst = append(dst, `{"task_id": `...)
	dst = appendString(dst, m.TaskID)
	dst = append(dst, `, "status": `...)
	dst = appendString(dst, m.Status)
	dst = append(dst, `, "result": `...)
	if dst, err = appendResult(dst, m.Result, mode); err != nil {
		return dst, err
	}
	dst = append(dst, `, "traceback": `...)
	dst = appendNullableString(dst, m.Traceback)
	dst = append(dst, `, "children": `...)
	if dst, err = appendList(dst, m.Children, mode); err != nil {
		return dst, fmt.Errorf("resultstore: children: %w", err)
	}
	return append(dst, '}'), nil
}

// MetaValue returns m as the plain value AppendMeta encodes, for result
// serializers other than JSON (kombu.Marshal). Exceptions become their
// dict form and date_done its ISO string.
func MetaValue(m *Meta, style Style) (map[string]any, error) {
	if m.TaskID == "" {
		return nil, ErrNoTaskID
	}
	v := map[string]any{
		"status":    m.Status,
		"result":    ResultValue(m.Result),
		"traceback": nil,
		"children":  m.Children,
		"date_done": nil,
		"task_id":   m.TaskID,
	}
	if m.Traceback != "" {
		v["traceback"] = m.Traceback
	}
	if m.Children == nil {
		v["children"] = []any{}
	}
	if !m.DateDone.IsZero() {
		v["date_done"] = string(AppendISOTime(nil, m.DateDone, style))
	}
	if m.GroupID != "" {
		v["group_id"] = m.GroupID
	}
	if m.ParentID != "" {
		v["parent_id"] = m.ParentID
	}
	if x := m.Extended; x != nil {
		if x.Unknown {
			for _, k := range []string{"name", "args", "kwargs", "worker", "retries", "queue"} {
				v[k] = nil
			}
		} else {
			v["name"] = x.Name
			v["args"] = x.Args
			if x.Args == nil {
				v["args"] = []any{}
			}
			v["kwargs"] = x.Kwargs
			if x.Kwargs == nil {
				v["kwargs"] = map[string]any{}
			}
			v["worker"] = x.Worker
			v["retries"] = int64(x.Retries)
			v["queue"] = nil
			if x.Queue != "" {
				v["queue"] = x.Queue
			}
		}
	}
	return v, nil
}

// StartedInfo is the result of a STARTED state, written as
// {"pid": PID, "hostname": Hostname} in Celery's key order. A plain
// map[string]any works too (keys then come sorted).
type StartedInfo struct {
	PID      int
	Hostname string
}

// ResultValue returns r with an exception converted to Celery's dict form
// {"exc_type", "exc_message", "exc_module"} and a StartedInfo to its map;
// other values are returned unchanged.
func ResultValue(r any) any {
	var e *ExceptionInfo
	switch x := r.(type) {
	case StartedInfo:
		return map[string]any{"pid": int64(x.PID), "hostname": x.Hostname}
	case *StartedInfo:
		if x == nil {
			return nil
		}
		return ResultValue(*x)
	case *ExceptionInfo:
		e = x
	case ExceptionInfo:
		e = &x
	default:
		return r
	}
	if e == nil {
		return nil
	}
	msg := e.Message
	if msg == nil {
		msg = []any{}
	}
	return map[string]any{"exc_type": e.Type, "exc_message": msg, "exc_module": e.Module}
}

// AppendResult appends the JSON form of a result value as Celery stores
// it (exceptions as their dict form), e.g. inside a chord part member.
func AppendResult(dst []byte, r any, mode kombu.JSONMode) ([]byte, error) {
	return appendResult(dst, r, mode)
}

func appendResult(dst []byte, r any, mode kombu.JSONMode) ([]byte, error) {
	switch x := r.(type) {
	case StartedInfo:
		dst = append(dst, `{"pid": `...)
		dst = strconv.AppendInt(dst, int64(x.PID), 10)
		dst = append(dst, `, "hostname": `...)
		dst = appendString(dst, x.Hostname)
		return append(dst, '}'), nil
	case *StartedInfo:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return appendResult(dst, *x, mode)
	case *ExceptionInfo:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return appendException(dst, x, mode)
	case ExceptionInfo:
		return appendException(dst, &x, mode)
	}
	out, err := kombu.AppendJSON(dst, r, mode)
	if err != nil {
		return dst, fmt.Errorf("resultstore: result: %w", err)
	}
	return out, nil
}

func appendException(dst []byte, e *ExceptionInfo, mode kombu.JSONMode) ([]byte, error) {
	dst = append(dst, `{"exc_type": `...)
	dst = appendString(dst, e.Type)
	dst = append(dst, `, "exc_message": `...)
	var err error
	if dst, err = appendList(dst, e.Message, mode); err != nil {
		return dst, fmt.Errorf("resultstore: exc_message: %w", err)
	}
	dst = append(dst, `, "exc_module": `...)
	dst = appendString(dst, e.Module)
	return append(dst, '}'), nil
}

func appendExtended(dst []byte, x *Extended, mode kombu.JSONMode) ([]byte, error) {
	if x.Unknown {
		return append(dst, `, "name": null, "args": null, "kwargs": null, "worker": null, "retries": null, "queue": null`...), nil
	}
	var err error
	dst = append(dst, `, "name": `...)
	dst = appendString(dst, x.Name)
	dst = append(dst, `, "args": `...)
	if dst, err = appendList(dst, x.Args, mode); err != nil {
		return dst, fmt.Errorf("resultstore: args: %w", err)
	}
	dst = append(dst, `, "kwargs": `...)
	if len(x.Kwargs) == 0 {
		dst = append(dst, "{}"...)
	} else if dst, err = kombu.AppendJSON(dst, x.Kwargs, mode); err != nil {
		return dst, fmt.Errorf("resultstore: kwargs: %w", err)
	}
	dst = append(dst, `, "worker": `...)
	dst = appendNullableString(dst, x.Worker)
	dst = append(dst, `, "retries": `...)
	dst = strconv.AppendInt(dst, int64(x.Retries), 10)
	dst = append(dst, `, "queue": `...)
	dst = appendNullableString(dst, x.Queue)
	return dst, nil
}

// appendList writes a list; nil and empty lists are written as [].
func appendList(dst []byte, l []any, mode kombu.JSONMode) ([]byte, error) {
	if len(l) == 0 {
		return append(dst, "[]"...), nil
	}
	return kombu.AppendJSON(dst, l, mode)
}

func appendString(dst []byte, s string) []byte {
	// Fast path: printable ASCII without quote or backslash is copied as is.
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	out, err := kombu.AppendJSON(dst, s, kombu.JSONPlain)
	if err != nil { // strings always encode
		panic("resultstore: string encoding failed: " + err.Error())
	}
	return out
}

func appendNullableString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return appendString(dst, s)
}

// appendDateDone writes t the way Python's datetime.isoformat() does
// (microseconds only when non-zero), quoted, or null when t is zero.
func appendDateDone(dst []byte, t time.Time, style Style) []byte {
	if t.IsZero() {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = AppendISOTime(dst, t, style)
	return append(dst, '"')
}

// AppendISOTime appends t as date_done text for style: naive UTC
// ("2026-11-26T07:56:36.430742") by default, or aware with the offset of
// style.Location (UTC when nil). Like Python's isoformat, the fraction is
// left out when the microseconds are zero.
func AppendISOTime(dst []byte, t time.Time, style Style) []byte {
	if style.AwareDateDone {
		if style.Location != nil {
			t = t.In(style.Location)
		} else {
			t = t.UTC()
		}
	} else {
		t = t.UTC()
	}
	dst = t.AppendFormat(dst, "2006-01-02T15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		dst = append(dst, '.')
		dst = appendPadded(dst, us, 6)
	}
	if style.AwareDateDone {
		_, off := t.Zone()
		if off < 0 {
			dst = append(dst, '-')
			off = -off
		} else {
			dst = append(dst, '+')
		}
		dst = appendPadded(dst, off/3600, 2)
		dst = append(dst, ':')
		dst = appendPadded(dst, off/60%60, 2)
		if s := off % 60; s != 0 {
			dst = append(dst, ':')
			dst = appendPadded(dst, s, 2)
		}
	}
	return dst
}

func appendPadded(dst []byte, v, width int) []byte {
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], int64(v), 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}

// DecodeMeta decodes a stored task meta document (kombu JSON, 5.3+ type
// markers understood) into plain values. The document must be a JSON
// object.
func DecodeMeta(data []byte) (map[string]any, error) {
	v, err := kombu.UnmarshalJSON(data)
	if err != nil {
		return nil, fmt.Errorf("resultstore: decode meta: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("resultstore: decode meta: document is %T, not an object", v)
	}
	return m, nil
}

// ExceptionFromValue converts Celery's exception dict form back to an
// ExceptionInfo. It reports false when v is not a dict with a string
// "exc_type". A string exc_message becomes a one-element Message, as
// Python passes it as the single argument.
func ExceptionFromValue(v any) (*ExceptionInfo, bool) {
	d, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	typ, ok := d["exc_type"].(string)
	if !ok {
		return nil, false
	}
	e := &ExceptionInfo{Type: typ}
	e.Module, _ = d["exc_module"].(string)
	switch msg := d["exc_message"].(type) {
	case []any:
		e.Message = msg
	case nil:
	default:
		e.Message = []any{msg}
	}
	return e, true
}
