package kombu

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"unsafe"
)

// DecodeEnvelope parses a kombu Redis JSON envelope (one list item or
// PUB/SUB payload):
//
//	{"body": "<base64>", "content-encoding": "utf-8",
//	 "content-type": "application/json", "headers": {...},
//	 "properties": {"correlation_id": ..., "reply_to": ..., "delivery_mode": 2,
//	                "delivery_info": {"exchange": "", "routing_key": "q"},
//	                "priority": 0, "body_encoding": "base64",
//	                "delivery_tag": "<uuid4>"}}
//
// The body is base64-decoded when properties.body_encoding is "base64" and
// taken as the string's UTF-8 bytes when body_encoding is absent. Missing
// fields stay zero; unknown properties go to Properties.Extra. Header values
// follow the package value model without marker conversion. Errors are
// *DecodeError.
func DecodeEnvelope(data []byte) (*Message, error) {
	m := &Message{}
	if err := decodeEnvelopeInto(m, data, false, false); err != nil {
		return nil, &DecodeError{Err: fmt.Errorf("envelope: %w", err)}
	}
	return m, nil
}

// DecodeEnvelopeString is DecodeEnvelope for an envelope held in a
// string, such as a Redis reply: the message's string fields point into s
// instead of being copied (s is immutable, so they stay valid for as long
// as they are used). The body is a copy, as with DecodeEnvelope.
func DecodeEnvelopeString(s string) (*Message, error) {
	m := &Message{}
	if err := decodeEnvelopeInto(m, unsafe.Slice(unsafe.StringData(s), len(s)), true, false); err != nil {
		return nil, &DecodeError{Err: fmt.Errorf("envelope: %w", err)}
	}
	return m, nil
}

// DecodeEnvelopeStringLazy is DecodeEnvelopeString that leaves the
// headers as JSON text: it checks them as thoroughly (any input one
// rejects, the other rejects) but sets HeadersJSON, a view of s, instead
// of building Headers. A reader that needs only some headers walks them
// with RangeHeaders; DecodeHeaders builds the map the eager decoder
// would have.
func DecodeEnvelopeStringLazy(s string) (*Message, error) {
	m := &Message{}
	if err := decodeEnvelopeInto(m, unsafe.Slice(unsafe.StringData(s), len(s)), true, true); err != nil {
		return nil, &DecodeError{Err: fmt.Errorf("envelope: %w", err)}
	}
	return m, nil
}

func decodeEnvelopeInto(m *Message, data []byte, shared, lazy bool) error {
	d := jsonDecoder{data: data, shared: shared}
	d.skipWS()
	var rawBody []byte
	hasBody := false
	err := d.objectMembers(func(key []byte) error {
		switch string(key) {
		case "body":
			if d.peek() == 'n' {
				return d.skipValue()
			}
			if d.peek() != '"' {
				return d.fail("body is not a string")
			}
			b, err := d.rawString()
			if err != nil {
				return err
			}
			// rawString may alias d.buf; take our own copy only if so.
			if len(b) > 0 && d.aliasesBuf(b) {
				b = slices.Clone(b)
			}
			rawBody, hasBody = b, true
			return nil
		case "content-type":
			s, err := d.optString()
			m.ContentType = s
			return err
		case "content-encoding":
			s, err := d.optString()
			m.ContentEncoding = s
			return err
		case "headers":
			if d.peek() == 'n' {
				return d.skipValue()
			}
			if d.peek() != '{' {
				return errors.New("headers is not an object")
			}
			if lazy {
				return d.lazyHeaders(m)
			}
			v, err := d.objectSized(24) // Celery task headers: 16-20 keys
			if err != nil {
				return err
			}
			h, ok := v.(map[string]any)
			if !ok {
				return errors.New("headers is not an object")
			}
			m.Headers = h
			return nil
		case "properties":
			if d.peek() == 'n' {
				return d.skipValue()
			}
			return d.properties(&m.Properties)
		default:
			return d.skipValue()
		}
	})
	if err != nil {
		return err
	}
	d.skipWS()
	if d.pos != len(d.data) {
		return d.fail("extra data")
	}
	if !hasBody {
		return nil
	}
	switch m.Properties.BodyEncoding {
	case "base64":
		out := make([]byte, base64.StdEncoding.DecodedLen(len(rawBody)))
		n, err := base64.StdEncoding.Decode(out, rawBody)
		if err != nil {
			if out, err = decodeBase64Lenient(rawBody); err != nil {
				return fmt.Errorf("body: %w", err)
			}
			n = len(out)
		}
		m.Body = out[:n]
	case "":
		m.Body = slices.Clone(rawBody)
		if m.Body == nil {
			m.Body = []byte{}
		}
	default:
		return fmt.Errorf("unsupported body_encoding %q", m.Properties.BodyEncoding)
	}
	return nil
}

func (d *jsonDecoder) aliasesBuf(b []byte) bool {
	return cap(d.buf) > 0 && &b[0] == &d.buf[:1][0]
}

func (d *jsonDecoder) peek() byte {
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

// optString reads a string or null.
func (d *jsonDecoder) optString() (string, error) {
	switch d.peek() {
	case 'n':
		return "", d.skipValue()
	case '"':
		b, err := d.rawString()
		if err != nil {
			return "", err
		}
		if v, ok := internValue(b); ok {
			return v, nil
		}
		return d.text(b), nil
	}
	return "", d.fail("expecting string")
}

// internValue returns common property values without allocating; ok is
// false for any other value.
func internValue(b []byte) (string, bool) {
	switch string(b) {
	case "":
		return "", true
	case "utf-8":
		return "utf-8", true
	case "binary":
		return "binary", true
	case "application/json":
		return "application/json", true
	case "application/x-msgpack":
		return "application/x-msgpack", true
	case "application/x-yaml":
		return "application/x-yaml", true
	case "base64":
		return "base64", true
	case "celery":
		return "celery", true
	}
	return "", false
}

// optScalarString reads a string, number or null and returns it as text
// (used for expiration and delivery_tag, which some producers send as
// numbers).
func (d *jsonDecoder) optScalarString() (string, error) {
	switch c := d.peek(); {
	case c == 'n' || c == '"':
		return d.optString()
	case c == '-' || isDigit(c):
		start := d.pos
		if _, err := d.number(); err != nil {
			return "", err
		}
		return d.text(d.data[start:d.pos]), nil
	}
	return "", d.fail("expecting string or number")
}

// optInt reads an integer (or an integral float) or null.
func (d *jsonDecoder) optInt() (int64, error) {
	if d.peek() == 'n' {
		return 0, d.skipValue()
	}
	if c := d.peek(); c != '-' && !isDigit(c) {
		return 0, d.fail("expecting integer")
	}
	v, err := d.number()
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case int64:
		return x, nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), nil
		}
	case *big.Int:
	}
	return 0, d.fail("expecting integer")
}

func (d *jsonDecoder) properties(p *Properties) error {
	return d.objectMembers(func(key []byte) error {
		var err error
		switch string(key) {
		case "correlation_id":
			p.CorrelationID, err = d.optScalarString()
		case "reply_to":
			p.ReplyTo, err = d.optString()
		case "delivery_mode":
			var v int64
			v, err = d.optInt()
			if err == nil && (v < 0 || v > 255) {
				err = fmt.Errorf("delivery_mode %d out of range", v)
			}
			p.DeliveryMode = uint8(v)
		case "priority":
			var v int64
			v, err = d.optInt()
			if err == nil && (v < math.MinInt32 || v > math.MaxInt32) {
				err = fmt.Errorf("priority %d out of range", v)
			}
			p.Priority = int(v)
		case "expiration":
			p.Expiration, err = d.optScalarString()
		case "delivery_tag":
			p.DeliveryTag, err = d.optScalarString()
		case "body_encoding":
			p.BodyEncoding, err = d.optString()
		case "delivery_info":
			if d.peek() == 'n' {
				return d.skipValue()
			}
			err = d.deliveryInfo(&p.DeliveryInfo)
		default:
			k := d.text(key)
			var v any
			v, err = d.value()
			if err == nil {
				if p.Extra == nil {
					p.Extra = make(map[string]any)
				}
				p.Extra[k] = v
			}
		}
		return err
	})
}

func (d *jsonDecoder) deliveryInfo(di *DeliveryInfo) error {
	return d.objectMembers(func(key []byte) error {
		var err error
		switch string(key) {
		case "exchange":
			di.Exchange, err = d.optString()
		case "routing_key":
			di.RoutingKey, err = d.optString()
		case "redelivered":
			var v any
			v, err = d.value()
			if err == nil {
				switch x := v.(type) {
				case bool:
					di.Redelivered = x
				case nil:
				default:
					err = errors.New("delivery_info.redelivered is not a boolean")
				}
			}
		default:
			err = d.skipValue()
		}
		return err
	})
}

// AppendEnvelope appends the kombu Redis JSON envelope for m to dst, in the
// layout kombu writes (Python json.dumps separators):
// body (base64), content-encoding, content-type, headers, and properties
// with correlation_id and reply_to (when set), Extra (sorted), delivery_mode
// (when non-zero), expiration (when set), delivery_info (redelivered only
// when true), priority, body_encoding "base64" and delivery_tag (when set).
// Headers are written in JSONPlain mode. Errors are *EncodeError.
func AppendEnvelope(dst []byte, m *Message) ([]byte, error) {
	orig := dst
	dst = append(dst, `{"body": "`...)
	dst = base64.StdEncoding.AppendEncode(dst, m.Body)
	dst = append(dst, `", "content-encoding": `...)
	dst = appendJSONString(dst, m.ContentEncoding)
	dst = append(dst, `, "content-type": `...)
	dst = appendJSONString(dst, m.ContentType)
	dst = append(dst, `, "headers": `...)
	e := jsonEncoder{mode: JSONPlain}
	var err error
	if m.Headers == nil {
		dst = append(dst, "{}"...)
	} else if dst, err = e.stringMap(dst, m.Headers); err != nil {
		return orig, &EncodeError{Err: fmt.Errorf("headers: %w", err)}
	}
	p := &m.Properties
	dst = append(dst, `, "properties": {`...)
	sep := false
	field := func(name string) {
		if sep {
			dst = append(dst, ", "...)
		}
		sep = true
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, `": `...)
	}
	if p.CorrelationID != "" {
		field("correlation_id")
		dst = appendJSONString(dst, p.CorrelationID)
	}
	if p.ReplyTo != "" {
		field("reply_to")
		dst = appendJSONString(dst, p.ReplyTo)
	}
	if len(p.Extra) > 0 {
		for _, k := range sortedKeys(p.Extra) {
			switch k {
			case "correlation_id", "reply_to", "delivery_mode", "expiration",
				"delivery_info", "priority", "body_encoding", "delivery_tag":
				continue // the typed fields win
			}
			if sep {
				dst = append(dst, ", "...)
			}
			sep = true
			dst = appendJSONString(dst, k)
			dst = append(dst, ": "...)
			if dst, err = e.value(dst, p.Extra[k]); err != nil {
				return orig, &EncodeError{Err: fmt.Errorf("property %q: %w", k, err)}
			}
		}
	}
	if p.DeliveryMode != 0 {
		field("delivery_mode")
		dst = strconv.AppendUint(dst, uint64(p.DeliveryMode), 10)
	}
	if p.Expiration != "" {
		field("expiration")
		dst = appendJSONString(dst, p.Expiration)
	}
	field("delivery_info")
	dst = append(dst, `{"exchange": `...)
	dst = appendJSONString(dst, p.DeliveryInfo.Exchange)
	dst = append(dst, `, "routing_key": `...)
	dst = appendJSONString(dst, p.DeliveryInfo.RoutingKey)
	if p.DeliveryInfo.Redelivered {
		dst = append(dst, `, "redelivered": true`...)
	}
	dst = append(dst, '}')
	field("priority")
	dst = strconv.AppendInt(dst, int64(p.Priority), 10)
	field("body_encoding")
	dst = append(dst, `"base64"`...)
	if p.DeliveryTag != "" {
		field("delivery_tag")
		dst = appendJSONString(dst, p.DeliveryTag)
	}
	return append(dst, "}}"...), nil
}
