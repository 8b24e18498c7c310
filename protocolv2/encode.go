package protocolv2

import (
	"errors"
	"math"
	"time"

	"github.com/celerity-go/celerity/kombu"
)

// ArgsReprMaxSize is the length argsrepr/kwargsrepr are truncated to
// (celery.app.amqp.AMQP.argsrepr_maxsize / kwargsrepr_maxsize).
const ArgsReprMaxSize = 1024

// EncodeOptions control how Encode serializes and addresses a task.
type EncodeOptions struct {
	// Serializer is the kombu serializer name; "" means "json".
	Serializer string
	// Compression is a kombu compression name ("zlib", "gzip", ...); ""
	// means none.
	Compression string
	// JSONMode selects plain (Celery 5.2) or typed (5.3+) JSON for the json
	// serializer.
	JSONMode kombu.JSONMode
	// ReplyTo is the reply_to property (Celery sets the client's oid on
	// every message; "" is allowed).
	ReplyTo string
	// Exchange and RoutingKey go to delivery_info; the task queue is the
	// routing key on the default exchange "".
	Exchange   string
	RoutingKey string
	// Priority is the priority property.
	Priority int
	// DeliveryMode is the delivery_mode property; 0 means 2 (persistent).
	DeliveryMode uint8
	// DeliveryTag is the delivery tag; "" means a fresh uuid4.
	DeliveryTag string
	// Origin is used for the origin header when the task has none; ""
	// means AnonNodename().
	Origin string
	// Now is the reference time for the expiration property; zero means
	// time.Now().
	Now time.Time
}

// Encode builds the protocol v2 message Celery 5.2 would send for t:
// the 16 Celery 5.2 headers (lang, task, id, shadow, eta, expires, group,
// group_index, retries, timelimit, root_id, parent_id, argsrepr,
// kwargsrepr, origin, ignore_result), the 5.3+ ones when t has them (see
// Task.Stamps), t.Extra, and "compression" when compressed; properties
// correlation_id = id, reply_to, delivery_mode, priority, delivery_info,
// delivery_tag and, when Expires is set, expiration (milliseconds from now
// as a string, clamped at 0); body [args, kwargs, {callbacks, errbacks,
// chain, chord}].
//
// Empty Lang becomes "py", empty RootID the task id, empty ArgsRepr and
// KwargsRepr are computed with ArgsRepr/KwargsRepr. t is not modified.
func Encode(t *Task, opt EncodeOptions) (*kombu.Message, error) {
	if t == nil {
		return nil, errors.New("protocolv2: encode: nil task")
	}
	if t.ID == "" {
		return nil, errors.New("protocolv2: encode: task id is required")
	}
	if t.Name == "" {
		return nil, errors.New("protocolv2: encode: task name is required")
	}
	args := t.Args
	if args == nil {
		args = []any{}
	}
	kwargs := t.Kwargs
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	var chord any
	if t.Chord != nil {
		chord = t.Chord.Value()
	}
	body := []any{args, kwargs, map[string]any{
		"callbacks": signatureValues(t.Callbacks),
		"errbacks":  signatureValues(t.Errbacks),
		"chain":     signatureValues(t.Chain),
		"chord":     chord,
	}}
	serializer := opt.Serializer
	if serializer == "" {
		serializer = "json"
	}
	data, ctype, cenc, err := kombu.Marshal(serializer, body, opt.JSONMode)
	if err != nil {
		return nil, err
	}

	h := make(map[string]any, 20+len(t.Extra))
	for k, v := range t.Extra {
		h[k] = v
	}
	lang := t.Lang
	if lang == "" {
		lang = "py"
	}
	h["lang"] = lang
	h["task"] = t.Name
	h["id"] = t.ID
	h["shadow"] = nullString(t.Shadow)
	h["eta"] = timeValue(t.ETA)
	h["expires"] = timeValue(t.Expires)
	h["group"] = nullString(t.Group)
	if t.GroupIndex != nil {
		h["group_index"] = int64(*t.GroupIndex)
	} else {
		h["group_index"] = nil
	}
	h["retries"] = int64(t.Retries)
	h["timelimit"] = []any{secondsValue(t.TimeLimit.Hard), secondsValue(t.TimeLimit.Soft)}
	root := t.RootID
	if root == "" {
		root = t.ID
	}
	h["root_id"] = root
	h["parent_id"] = nullString(t.ParentID)
	argsrepr, kwargsrepr := t.ArgsRepr, t.KwargsRepr
	if argsrepr == "" {
		argsrepr = ArgsRepr(args)
	}
	if kwargsrepr == "" {
		kwargsrepr = KwargsRepr(kwargs)
	}
	h["argsrepr"] = argsrepr
	h["kwargsrepr"] = kwargsrepr
	origin := t.Origin
	if origin == "" {
		origin = opt.Origin
	}
	if origin == "" {
		origin = AnonNodename()
	}
	h["origin"] = origin
	h["ignore_result"] = t.IgnoreResult
	if t.Stamped || t.Stamps != nil || t.StampedHeaders != nil || t.ReplacedTaskNesting != 0 {
		h["replaced_task_nesting"] = int64(t.ReplacedTaskNesting)
		if t.StampedHeaders != nil {
			sh := make([]any, len(t.StampedHeaders))
			for i, s := range t.StampedHeaders {
				sh[i] = s
			}
			h["stamped_headers"] = sh
		} else {
			h["stamped_headers"] = nil
		}
		stamps := t.Stamps
		if stamps == nil {
			stamps = map[string]any{}
		}
		h["stamps"] = stamps
	}
	if opt.Compression != "" {
		header, out, err := kombu.Compress(opt.Compression, data)
		if err != nil {
			return nil, err
		}
		data = out
		h["compression"] = header
	} else {
		delete(h, "compression")
	}

	mode := opt.DeliveryMode
	if mode == 0 {
		mode = 2
	}
	tag := opt.DeliveryTag
	if tag == "" {
		tag = NewID()
	}
	m := &kombu.Message{
		Body:            data,
		ContentType:     ctype,
		ContentEncoding: cenc,
		Headers:         h,
		Properties: kombu.Properties{
			CorrelationID: t.ID,
			ReplyTo:       opt.ReplyTo,
			DeliveryMode:  mode,
			Priority:      opt.Priority,
			DeliveryTag:   tag,
			DeliveryInfo: kombu.DeliveryInfo{
				Exchange:   opt.Exchange,
				RoutingKey: opt.RoutingKey,
			},
		},
	}
	if !t.Expires.IsZero() {
		now := opt.Now
		if now.IsZero() {
			now = time.Now()
		}
		m.Properties.Expiration = expirationMillis(t.Expires, now)
	}
	return m, nil
}

// expirationMillis is kombu's str(int(seconds * 1000)) with Celery's clamp
// of negative values to 0.
func expirationMillis(expires, now time.Time) string {
	s := expires.Sub(now).Seconds()
	if s < 0 {
		s = 0
	}
	return string(appendPad(nil, int(s*1000), 1))
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func timeValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return FormatTime(t)
}

// secondsValue writes an integral limit as an integer (Python sends ints
// for time_limit=30) and others as floats.
func secondsValue(p *float64) any {
	if p == nil {
		return nil
	}
	f := *p
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int64(f)
	}
	return f
}
