package kombu

import (
	"errors"
	"unsafe"
)

// lazyHeaders checks the headers object at d.pos as objectSized would
// read it, without building it: HeadersJSON becomes its text, and the
// compression header, which DecodeBody needs, is kept aside.
func (d *jsonDecoder) lazyHeaders(m *Message) error {
	start := d.pos
	err := d.objectMembers(func(key []byte) error {
		if string(key) == "compression" {
			v, err := d.value()
			m.compression, m.hasCompression = v, true
			return err
		}
		return d.skipChecked()
	})
	if err != nil {
		return err
	}
	m.HeadersJSON = d.text(d.data[start:d.pos])
	m.scanned = true
	return nil
}

// skipChecked consumes one value as value would, checking it as
// thoroughly, without building strings, arrays or objects.
func (d *jsonDecoder) skipChecked() error {
	switch d.peek() {
	case '"':
		_, err := d.rawString()
		return err
	case '[':
		return d.arrayElems(d.skipChecked)
	case '{':
		return d.objectMembers(func([]byte) error { return d.skipChecked() })
	}
	_, err := d.value() // a number or a literal: nothing to build
	return err
}

// lazyCompression returns the compression header of a message whose
// headers are JSON text.
func (m *Message) lazyCompression() (v any, ok bool, err error) {
	if m.scanned {
		return m.compression, m.hasCompression, nil
	}
	err = m.RangeHeaders(func(key string, hv *HeaderValue) error {
		if key != "compression" {
			return nil
		}
		v, err = hv.Value()
		ok = true
		return err
	})
	return v, ok, err
}

// DecodeHeaders builds Headers from HeadersJSON, as the eager decoders
// would have, when Headers is nil. It does nothing otherwise.
func (m *Message) DecodeHeaders() error {
	if m.Headers != nil || m.HeadersJSON == "" {
		return nil
	}
	d := m.headersText()
	v, err := d.objectSized(24)
	if err = d.end(err); err != nil {
		return err
	}
	m.Headers = v.(map[string]any)
	return nil
}

// headersText is a decoder at the start of m's headers text.
func (m *Message) headersText() *jsonDecoder {
	d := &jsonDecoder{data: unsafe.Slice(unsafe.StringData(m.HeadersJSON), len(m.HeadersJSON)), shared: true}
	d.skipWS()
	return d
}

// end checks that nothing follows the headers object d has read (err:
// how reading it went) and words a fault in the text as a *DecodeError.
func (d *jsonDecoder) end(err error) error {
	if err == nil {
		d.skipWS()
		if d.pos == len(d.data) {
			return nil
		}
		err = d.fail("extra data")
	}
	return &DecodeError{Err: errors.Join(errors.New("headers"), err)}
}

// HeaderValue is one header's value, valid during the RangeHeaders call
// that passes it.
type HeaderValue struct {
	d     *jsonDecoder // the JSON text at the value, until it is read
	val   any          // the value once read (or from Headers)
	str   string       // the value once read by String (not boxed)
	read  bool
	isStr bool // read by String: the value is str
}

// String returns the value when it is a string, without boxing it (from
// JSON text the string may be a view of the envelope). ok is false for
// any other value, which Value still returns.
func (v *HeaderValue) String() (s string, ok bool, err error) {
	if v.isStr {
		return v.str, true, nil
	}
	if v.read {
		s, ok = v.val.(string)
		return s, ok, nil
	}
	if v.d.peek() != '"' {
		return "", false, nil
	}
	b, err := v.d.rawString()
	if err != nil {
		return "", false, err
	}
	v.str, v.read, v.isStr = v.d.text(b), true, true
	return v.str, true, nil
}

// Value returns the value in the package value model, as Headers would
// hold it.
func (v *HeaderValue) Value() (any, error) {
	if v.isStr {
		return v.str, nil
	}
	if v.read {
		return v.val, nil
	}
	val, err := v.d.value()
	if err != nil {
		return nil, err
	}
	v.val, v.read = val, true
	return val, nil
}

// RangeHeaders calls fn for each header, from Headers when it is set
// (in map order), else from HeadersJSON (in the text's order, a key that
// appears twice once per appearance). fn may read the value with String
// or Value, or not at all. It stops at the first error and returns it:
// fn's as it is, a fault in the text as a *DecodeError.
func (m *Message) RangeHeaders(fn func(key string, v *HeaderValue) error) error {
	if m.Headers != nil || m.HeadersJSON == "" {
		for k, val := range m.Headers {
			if err := fn(k, &HeaderValue{val: val, read: true}); err != nil {
				return err
			}
		}
		return nil
	}
	d := m.headersText()
	var hv HeaderValue
	var fnErr error
	err := d.objectMembers(func(key []byte) error {
		k, ok := internKey(key)
		if !ok {
			k = d.text(key)
		}
		hv = HeaderValue{d: d}
		if fnErr = fn(k, &hv); fnErr != nil {
			return fnErr
		}
		if !hv.read {
			return d.skipChecked()
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	return d.end(err)
}
