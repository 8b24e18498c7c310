package kombu

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// unmarshalMsgpack decodes a msgpack body as Python's
// msgpack.unpackb(raw=False) does, into the package value model: str ->
// string (must be UTF-8), bin -> []byte, ints -> int64 (uint64 above
// MaxInt64 -> *big.Int), floats -> float64, maps -> map[string]any (str or
// bin keys only, like strict_map_key), the timestamp extension (-1) ->
// time.Time in UTC. Other extension types and trailing bytes are errors.
func unmarshalMsgpack(body []byte) (any, error) {
	br := bytes.NewReader(body)
	md := msgpack.NewDecoder(br)
	d := mpDecoder{d: md, r: br}
	v, err := d.value(0)
	if err == nil && br.Len() != 0 {
		err = errors.New("extra data after msgpack value")
	}
	if err != nil {
		return nil, &DecodeError{Err: fmt.Errorf("msgpack: %w", err)}
	}
	return v, nil
}

type mpDecoder struct {
	d *msgpack.Decoder
	r *bytes.Reader
}

func (m *mpDecoder) value(depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("nesting too deep")
	}
	c, err := m.d.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case c == msgpcode.Nil:
		return nil, m.d.DecodeNil()
	case c == msgpcode.True || c == msgpcode.False:
		return m.d.DecodeBool()
	case c == msgpcode.Uint64:
		u, err := m.d.DecodeUint64()
		if err != nil {
			return nil, err
		}
		if u > math.MaxInt64 {
			return new(big.Int).SetUint64(u), nil
		}
		return int64(u), nil
	case msgpcode.IsFixedNum(c), c >= msgpcode.Uint8 && c <= msgpcode.Int64:
		return m.d.DecodeInt64()
	case c == msgpcode.Float || c == msgpcode.Double:
		return m.d.DecodeFloat64()
	case msgpcode.IsString(c):
		s, err := m.d.DecodeString()
		if err != nil {
			return nil, err
		}
		if !utf8.ValidString(s) {
			return nil, errors.New("str is not valid UTF-8")
		}
		return s, nil
	case msgpcode.IsBin(c):
		b, err := m.d.DecodeBytes()
		if b == nil && err == nil {
			b = []byte{}
		}
		return b, err
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := m.d.DecodeArrayLen()
		if err != nil {
			return nil, err
		}
		if n < 0 || n > m.r.Len() {
			return nil, errors.New("array length exceeds input")
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = m.value(depth + 1); err != nil {
				return nil, err
			}
		}
		return out, nil
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := m.d.DecodeMapLen()
		if err != nil {
			return nil, err
		}
		if n < 0 || n > m.r.Len()/2 {
			return nil, errors.New("map length exceeds input")
		}
		out := make(map[string]any, min(n, 64))
		for i := 0; i < n; i++ {
			k, err := m.value(depth + 1)
			if err != nil {
				return nil, err
			}
			var key string
			switch x := k.(type) {
			case string:
				key = x
			case []byte:
				key = string(x)
			default:
				return nil, fmt.Errorf("map key of type %T is not allowed", k)
			}
			if out[key], err = m.value(depth + 1); err != nil {
				return nil, err
			}
		}
		return out, nil
	case msgpcode.IsExt(c):
		id, n, err := m.d.DecodeExtHeader()
		if err != nil {
			return nil, err
		}
		if n < 0 || n > m.r.Len() {
			return nil, errors.New("ext length exceeds input")
		}
		buf := make([]byte, n)
		if err := m.d.ReadFull(buf); err != nil {
			return nil, err
		}
		if id != -1 {
			return nil, fmt.Errorf("unsupported msgpack extension type %d", id)
		}
		return decodeMsgpackTimestamp(buf)
	}
	return nil, fmt.Errorf("invalid msgpack code 0x%02x", c)
}

func decodeMsgpackTimestamp(b []byte) (time.Time, error) {
	switch len(b) {
	case 4:
		return time.Unix(int64(binary.BigEndian.Uint32(b)), 0).UTC(), nil
	case 8:
		v := binary.BigEndian.Uint64(b)
		ns := int64(v >> 34)
		if ns > 999999999 {
			return time.Time{}, errors.New("invalid timestamp nanoseconds")
		}
		return time.Unix(int64(v&(1<<34-1)), ns).UTC(), nil
	case 12:
		ns := int64(binary.BigEndian.Uint32(b))
		if ns > 999999999 {
			return time.Time{}, errors.New("invalid timestamp nanoseconds")
		}
		return time.Unix(int64(binary.BigEndian.Uint64(b[4:])), ns).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("invalid timestamp length %d", len(b))
}

// marshalMsgpack encodes v as Python's msgpack.packb(use_bin_type=True)
// does: compact ints, float64 for floats, str for strings, bin for []byte.
// Python's msgpack has no datetime/Decimal/UUID support; these are written
// as strings in their kombu 5.2 JSON form (time.Time as ISO 8601).
// Integers beyond 64 bits are an *EncodeError.
func marshalMsgpack(v any) ([]byte, error) {
	var buf bytes.Buffer
	e := mpEncoder{e: msgpack.NewEncoder(&buf)}
	if err := e.value(v, 0); err != nil {
		return nil, &EncodeError{Err: fmt.Errorf("msgpack: %w", err)}
	}
	return buf.Bytes(), nil
}

type mpEncoder struct {
	e       *msgpack.Encoder
	scratch []byte
}

func (m *mpEncoder) plainString(v any) error {
	var err error
	m.scratch, err = AppendJSON(m.scratch[:0], v, JSONPlain)
	if err != nil {
		return err
	}
	var s string
	if err := json.Unmarshal(m.scratch, &s); err != nil {
		return err
	}
	return m.e.EncodeString(s)
}

func (m *mpEncoder) value(v any, depth int) error {
	if depth > maxEncodeDepth {
		return errors.New("nesting too deep (circular reference?)")
	}
	e := m.e
	switch x := v.(type) {
	case nil:
		return e.EncodeNil()
	case bool:
		return e.EncodeBool(x)
	case string:
		return e.EncodeString(x)
	case int:
		return e.EncodeInt(int64(x))
	case int8:
		return e.EncodeInt(int64(x))
	case int16:
		return e.EncodeInt(int64(x))
	case int32:
		return e.EncodeInt(int64(x))
	case int64:
		return e.EncodeInt(x)
	case uint:
		return e.EncodeUint(uint64(x))
	case uint8:
		return e.EncodeUint(uint64(x))
	case uint16:
		return e.EncodeUint(uint64(x))
	case uint32:
		return e.EncodeUint(uint64(x))
	case uint64:
		return e.EncodeUint(x)
	case uintptr:
		return e.EncodeUint(uint64(x))
	case float64:
		return e.EncodeFloat64(x)
	case float32:
		return e.EncodeFloat64(float64(x))
	case *big.Int:
		switch {
		case x == nil:
			return e.EncodeNil()
		case x.IsInt64():
			return e.EncodeInt(x.Int64())
		case x.IsUint64():
			return e.EncodeUint(x.Uint64())
		}
		return errors.New("integer does not fit in 64 bits")
	case []byte:
		return e.EncodeBytes(x)
	case []any:
		if err := e.EncodeArrayLen(len(x)); err != nil {
			return err
		}
		for _, it := range x {
			if err := m.value(it, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if err := e.EncodeMapLen(len(x)); err != nil {
			return err
		}
		for _, k := range sortedKeys(x) {
			if err := e.EncodeString(k); err != nil {
				return err
			}
			if err := m.value(x[k], depth+1); err != nil {
				return err
			}
		}
		return nil
	case time.Time, *time.Time, Date, TimeOfDay, Decimal, UUID:
		return m.plainString(x)
	case json.Number:
		return m.value(parseJSONNumber(x), depth)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return e.EncodeNil()
		}
		return m.value(rv.Elem().Interface(), depth+1)
	case reflect.Bool:
		return e.EncodeBool(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return e.EncodeInt(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return e.EncodeUint(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return e.EncodeFloat64(rv.Float())
	case reflect.String:
		return e.EncodeString(rv.String())
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return e.EncodeNil()
		}
		if rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 {
			return e.EncodeBytes(rv.Convert(byteSliceType).Interface().([]byte))
		}
		if err := e.EncodeArrayLen(rv.Len()); err != nil {
			return err
		}
		for i := 0; i < rv.Len(); i++ {
			if err := m.value(rv.Index(i).Interface(), depth+1); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map, reflect.Struct:
		// Go through the JSON value model so key conversion and struct
		// tags behave exactly as for JSON.
		b, err := AppendJSON(nil, v, JSONPlain)
		if err != nil {
			return err
		}
		generic, err := UnmarshalJSON(b)
		if err != nil {
			return err
		}
		return m.value(generic, depth+1)
	}
	return fmt.Errorf("can not serialize %T object", v)
}

func parseJSONNumber(n json.Number) any {
	if v, err := UnmarshalJSON([]byte(n)); err == nil {
		return v
	}
	return string(n)
}
