package kombu

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// JSONMode selects how values without a native JSON form are written.
type JSONMode int

const (
	// JSONPlain writes special values the way kombu 5.2 does: datetimes as
	// ISO strings (a zero UTC offset as "Z"), naive datetimes without zone,
	// Date as "YYYY-MM-DDT00:00:00", TimeOfDay as ISO, Decimal and UUID as
	// strings. []byte is written as a string when it is valid UTF-8 and is an
	// EncodeError otherwise; kombu 5.2 itself refuses all bytes, so this is
	// a deliberate leniency.
	JSONPlain JSONMode = iota
	// JSONTyped writes the kombu >= 5.3 markers exactly as kombu 5.6 does:
	// {"__type__": "datetime", "__value__": "2024-01-02T03:04:05.600000+00:00"},
	// "date", "time", "decimal", {"__type__": "uuid", "__value__": {"hex": ...}},
	// and bytes as "bytes" (valid UTF-8) or "base64".
	JSONTyped
)

const maxEncodeDepth = 1000

// AppendJSON appends the JSON encoding of v to dst, formatted like Python's
// json.dumps defaults (", " and ": " separators, ensure_ascii escaping), so
// output for the same value is byte-identical to kombu's. Map keys are
// sorted. See JSONMode for the special types. Errors are *EncodeError.
func AppendJSON(dst []byte, v any, mode JSONMode) ([]byte, error) {
	e := jsonEncoder{mode: mode}
	out, err := e.value(dst, v)
	if err != nil {
		return dst, &EncodeError{Err: err}
	}
	return out, nil
}

type jsonEncoder struct {
	mode  JSONMode
	depth int
}

func (e *jsonEncoder) value(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendJSONString(dst, x), nil
	case bool:
		if x {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uintptr:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case float64:
		return appendPyFloat(dst, x, 64), nil
	case float32:
		return appendPyFloat(dst, float64(x), 32), nil
	case *big.Int:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return x.Append(dst, 10), nil
	case json.Number:
		if x == "" {
			return append(dst, '0'), nil
		}
		if !json.Valid([]byte(x)) {
			return dst, fmt.Errorf("invalid json.Number %q", string(x))
		}
		return append(dst, x...), nil
	case []any:
		return e.list(dst, len(x), func(dst []byte, i int) ([]byte, error) { return e.value(dst, x[i]) })
	case map[string]any:
		return e.stringMap(dst, x)
	case []string:
		return e.list(dst, len(x), func(dst []byte, i int) ([]byte, error) { return appendJSONString(dst, x[i]), nil })
	case map[string]string:
		if err := e.enter(); err != nil {
			return dst, err
		}
		keys := sortedKeys(x)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ": "...)
			dst = appendJSONString(dst, x[k])
		}
		e.depth--
		return append(dst, '}'), nil
	case []byte:
		return e.bytes(dst, x)
	case time.Time:
		return e.datetime(dst, x)
	case *time.Time:
		if x == nil {
			return append(dst, "null"...), nil
		}
		return e.datetime(dst, *x)
	case Date:
		if e.mode == JSONTyped {
			dst = append(dst, `{"__type__": "date", "__value__": "`...)
			dst = appendDate(dst, x.Year, int(x.Month), x.Day)
			return append(dst, `"}`...), nil
		}
		dst = append(dst, '"')
		dst = appendDate(dst, x.Year, int(x.Month), x.Day)
		return append(dst, `T00:00:00"`...), nil
	case TimeOfDay:
		if e.mode == JSONTyped {
			dst = append(dst, `{"__type__": "time", "__value__": "`...)
			dst = appendTimeOfDay(dst, x)
			return append(dst, `"}`...), nil
		}
		dst = append(dst, '"')
		dst = appendTimeOfDay(dst, x)
		return append(dst, '"'), nil
	case Decimal:
		if e.mode == JSONTyped {
			dst = append(dst, `{"__type__": "decimal", "__value__": `...)
			dst = appendJSONString(dst, string(x))
			return append(dst, '}'), nil
		}
		return appendJSONString(dst, string(x)), nil
	case UUID:
		if e.mode == JSONTyped {
			dst = append(dst, `{"__type__": "uuid", "__value__": {"hex": "`...)
			var h [32]byte
			hexEncode(h[:], x[:])
			dst = append(dst, h[:]...)
			return append(dst, `"}}`...), nil
		}
		var b [36]byte
		encodeUUIDDashed(b[:], x)
		dst = append(dst, '"')
		dst = append(dst, b[:]...)
		return append(dst, '"'), nil
	case json.Marshaler:
		return e.marshaler(dst, x)
	}
	return e.reflectValue(dst, reflect.ValueOf(v))
}

func hexEncode(dst, src []byte) {
	const digits = "0123456789abcdef"
	for i, c := range src {
		dst[2*i] = digits[c>>4]
		dst[2*i+1] = digits[c&15]
	}
}

func (e *jsonEncoder) enter() error {
	e.depth++
	if e.depth > maxEncodeDepth {
		return errors.New("nesting too deep (circular reference?)")
	}
	return nil
}

func (e *jsonEncoder) list(dst []byte, n int, item func([]byte, int) ([]byte, error)) ([]byte, error) {
	if err := e.enter(); err != nil {
		return dst, err
	}
	dst = append(dst, '[')
	var err error
	for i := 0; i < n; i++ {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		if dst, err = item(dst, i); err != nil {
			return dst, err
		}
	}
	e.depth--
	return append(dst, ']'), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (e *jsonEncoder) stringMap(dst []byte, m map[string]any) ([]byte, error) {
	if err := e.enter(); err != nil {
		return dst, err
	}
	dst = append(dst, '{')
	var err error
	if len(m) == 1 {
		for k, v := range m {
			dst = appendJSONString(dst, k)
			dst = append(dst, ": "...)
			if dst, err = e.value(dst, v); err != nil {
				return dst, err
			}
		}
	} else if len(m) > 1 {
		var stack [16]string
		keys := stack[:0]
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ": "...)
			if dst, err = e.value(dst, m[k]); err != nil {
				return dst, err
			}
		}
	}
	e.depth--
	return append(dst, '}'), nil
}

func (e *jsonEncoder) bytes(dst []byte, b []byte) ([]byte, error) {
	valid := utf8.Valid(b)
	if e.mode == JSONTyped {
		if valid {
			dst = append(dst, `{"__type__": "bytes", "__value__": `...)
			dst = appendJSONStringBytes(dst, b)
			return append(dst, '}'), nil
		}
		dst = append(dst, `{"__type__": "base64", "__value__": "`...)
		dst = base64.StdEncoding.AppendEncode(dst, b)
		return append(dst, `"}`...), nil
	}
	if !valid {
		return dst, errors.New("bytes that are not valid UTF-8 cannot be written in JSONPlain mode")
	}
	return appendJSONStringBytes(dst, b), nil
}

func (e *jsonEncoder) datetime(dst []byte, t time.Time) ([]byte, error) {
	var err error
	if e.mode == JSONTyped {
		dst = append(dst, `{"__type__": "datetime", "__value__": "`...)
		if dst, err = appendDateTime(dst, t, false); err != nil {
			return dst, err
		}
		return append(dst, `"}`...), nil
	}
	dst = append(dst, '"')
	if dst, err = appendDateTime(dst, t, true); err != nil {
		return dst, err
	}
	return append(dst, '"'), nil
}

func (e *jsonEncoder) marshaler(dst []byte, m json.Marshaler) ([]byte, error) {
	if rv := reflect.ValueOf(m); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return append(dst, "null"...), nil
	}
	b, err := m.MarshalJSON()
	if err != nil {
		return dst, err
	}
	if !json.Valid(b) {
		return dst, fmt.Errorf("%T.MarshalJSON returned invalid JSON", m)
	}
	return append(dst, b...), nil
}

var (
	marshalerType = reflect.TypeFor[json.Marshaler]()
	byteSliceType = reflect.TypeFor[[]byte]()
)

func (e *jsonEncoder) reflectValue(dst []byte, rv reflect.Value) ([]byte, error) {
	if !rv.IsValid() {
		return append(dst, "null"...), nil
	}
	if rv.Type().Implements(marshalerType) && rv.CanInterface() {
		return e.marshaler(dst, rv.Interface().(json.Marshaler))
	}
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return append(dst, "null"...), nil
		}
		if err := e.enter(); err != nil {
			return dst, err
		}
		out, err := e.value(dst, rv.Elem().Interface())
		e.depth--
		return out, err
	case reflect.Bool:
		return e.value(dst, rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(dst, rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(dst, rv.Uint(), 10), nil
	case reflect.Float32:
		return appendPyFloat(dst, rv.Float(), 32), nil
	case reflect.Float64:
		return appendPyFloat(dst, rv.Float(), 64), nil
	case reflect.String:
		return appendJSONString(dst, rv.String()), nil
	case reflect.Slice:
		if rv.IsNil() {
			return append(dst, "null"...), nil
		}
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return e.bytes(dst, rv.Convert(byteSliceType).Interface().([]byte))
		}
		fallthrough
	case reflect.Array:
		return e.list(dst, rv.Len(), func(dst []byte, i int) ([]byte, error) {
			return e.value(dst, rv.Index(i).Interface())
		})
	case reflect.Map:
		return e.reflectMap(dst, rv)
	case reflect.Struct:
		b, err := json.Marshal(rv.Interface())
		if err != nil {
			return dst, err
		}
		return append(dst, b...), nil
	}
	return dst, fmt.Errorf("object of type %s is not JSON serializable", rv.Type())
}

func (e *jsonEncoder) reflectMap(dst []byte, rv reflect.Value) ([]byte, error) {
	if rv.IsNil() {
		return append(dst, "null"...), nil
	}
	type kv struct {
		k string
		v reflect.Value
	}
	items := make([]kv, 0, rv.Len())
	iter := rv.MapRange()
	for iter.Next() {
		k := iter.Key()
		var ks string
		switch k.Kind() {
		case reflect.String:
			ks = k.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			ks = strconv.FormatInt(k.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			ks = strconv.FormatUint(k.Uint(), 10)
		case reflect.Bool:
			ks = strconv.FormatBool(k.Bool())
		default:
			return dst, fmt.Errorf("keys must be str, int, float, bool or None, not %s", k.Type())
		}
		items = append(items, kv{ks, iter.Value()})
	}
	slices.SortFunc(items, func(a, b kv) int {
		switch {
		case a.k < b.k:
			return -1
		case a.k > b.k:
			return 1
		}
		return 0
	})
	if err := e.enter(); err != nil {
		return dst, err
	}
	dst = append(dst, '{')
	var err error
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = appendJSONString(dst, it.k)
		dst = append(dst, ": "...)
		if dst, err = e.value(dst, it.v.Interface()); err != nil {
			return dst, err
		}
	}
	e.depth--
	return append(dst, '}'), nil
}

// appendPyFloat writes f as Python's float repr (as used by json.dumps):
// shortest round-trip digits, fixed notation for exponents -4..15 with at
// least one fractional digit, otherwise d.ddde±XX; NaN, Infinity, -Infinity.
func appendPyFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	var scratch [32]byte
	s := strconv.AppendFloat(scratch[:0], f, 'e', -1, bits) // -d.ddde±XX
	neg := s[0] == '-'
	if neg {
		s = s[1:]
		dst = append(dst, '-')
	}
	ei := 0
	for ei < len(s) && s[ei] != 'e' {
		ei++
	}
	mant := s[:ei]
	exp, _ := strconv.Atoi(string(s[ei+1:]))
	var digs [24]byte
	digits := digs[:0]
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	if exp < -4 || exp >= 16 {
		dst = append(dst, digits[0])
		if len(digits) > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if exp < 0 {
			dst = append(dst, '-')
			exp = -exp
		} else {
			dst = append(dst, '+')
		}
		if exp < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(exp), 10)
	}
	if exp < 0 {
		dst = append(dst, "0."...)
		for i := -1; i > exp; i-- {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	// exp >= 0: integer part is digits[:exp+1] (zero padded).
	for i := 0; i <= exp; i++ {
		if i < len(digits) {
			dst = append(dst, digits[i])
		} else {
			dst = append(dst, '0')
		}
	}
	dst = append(dst, '.')
	if exp+1 < len(digits) {
		return append(dst, digits[exp+1:]...)
	}
	return append(dst, '0')
}

var hexDigits = "0123456789abcdef"

// jsonSafe[c] is true for ASCII bytes Python's ensure_ascii writes as-is.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return
}()

// appendJSONString writes s as a JSON string with Python's ensure_ascii
// escaping (non-ASCII as \uXXXX, astral runes as surrogate pairs; invalid
// UTF-8 as \ufffd).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			dst = appendEscapeASCII(dst, c)
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			dst = appendEscapeRune(dst, r)
			i += size
		}
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendJSONStringBytes is appendJSONString for a byte slice.
func appendJSONStringBytes(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			dst = appendEscapeASCII(dst, c)
			i++
		} else {
			r, size := utf8.DecodeRune(s[i:])
			dst = appendEscapeRune(dst, r)
			i += size
		}
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendEscapeASCII(dst []byte, c byte) []byte {
	switch c {
	case '"':
		return append(dst, '\\', '"')
	case '\\':
		return append(dst, '\\', '\\')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
}

func appendEscapeRune(dst []byte, r rune) []byte {
	if r > 0xffff {
		r -= 0x10000
		dst = appendU4(dst, 0xd800+(r>>10))
		return appendU4(dst, 0xdc00+(r&0x3ff))
	}
	return appendU4(dst, r)
}

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&15], hexDigits[r>>8&15], hexDigits[r>>4&15], hexDigits[r&15])
}
