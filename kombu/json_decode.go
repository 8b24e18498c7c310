package kombu

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxJSONDepth bounds nesting so hostile input cannot exhaust the stack.
const maxJSONDepth = 10000

// jsonDecoder is a small recursive-descent parser producing the package's
// value model. It accepts what Python's json.loads accepts (including the
// NaN / Infinity / -Infinity literals) and rejects the rest.
type jsonDecoder struct {
	data    []byte
	pos     int
	depth   int
	markers bool // convert kombu >= 5.3 {"__type__", "__value__"} markers
	buf     []byte
	// shared: data is immutable for good (it is a Go string's bytes), so
	// the strings the decoder returns may point into it instead of being
	// copies.
	shared bool
}

// text returns b, which aliases data or buf, as a string: a view of data
// when data is shared, a copy otherwise.
func (d *jsonDecoder) text(b []byte) string {
	if d.shared && len(b) > 0 && !d.aliasesBuf(b) {
		return unsafe.String(&b[0], len(b))
	}
	return string(b)
}

type jsonSyntaxError struct {
	msg string
	off int
}

func (e *jsonSyntaxError) Error() string {
	return fmt.Sprintf("json: %s at offset %d", e.msg, e.off)
}

func (d *jsonDecoder) fail(msg string) error {
	return &jsonSyntaxError{msg: msg, off: d.pos}
}

func (d *jsonDecoder) skipWS() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// decodeDocument parses one complete JSON text.
func (d *jsonDecoder) decodeDocument() (any, error) {
	d.skipWS()
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.skipWS()
	if d.pos != len(d.data) {
		return nil, d.fail("extra data")
	}
	return v, nil
}

func (d *jsonDecoder) expect(lit string) bool {
	if len(d.data)-d.pos >= len(lit) && string(d.data[d.pos:d.pos+len(lit)]) == lit {
		d.pos += len(lit)
		return true
	}
	return false
}

func (d *jsonDecoder) value() (any, error) {
	if d.pos >= len(d.data) {
		return nil, d.fail("unexpected end of input")
	}
	switch c := d.data[d.pos]; c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		return d.str()
	case 't':
		if d.expect("true") {
			return true, nil
		}
	case 'f':
		if d.expect("false") {
			return false, nil
		}
	case 'n':
		if d.expect("null") {
			return nil, nil
		}
	case 'N':
		if d.expect("NaN") {
			return math.NaN(), nil
		}
	case 'I':
		if d.expect("Infinity") {
			return math.Inf(1), nil
		}
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return d.number()
		}
	}
	return nil, d.fail("expecting value")
}

func (d *jsonDecoder) enter() error {
	d.depth++
	if d.depth > maxJSONDepth {
		return d.fail("nesting too deep")
	}
	return nil
}

func (d *jsonDecoder) array() (any, error) {
	var out []any
	err := d.arrayElems(func() error {
		v, err := d.value()
		if out == nil {
			out = make([]any, 0, 4)
		}
		out = append(out, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

// arrayElems iterates over the elements of the array at d.pos, calling fn
// at each; fn must consume the element.
func (d *jsonDecoder) arrayElems(fn func() error) error {
	if err := d.enter(); err != nil {
		return err
	}
	d.pos++ // '['
	d.skipWS()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return nil
	}
	for {
		d.skipWS()
		if err := fn(); err != nil {
			return err
		}
		d.skipWS()
		if d.pos >= len(d.data) {
			return d.fail("unterminated array")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			d.depth--
			return nil
		default:
			return d.fail("expecting ',' delimiter")
		}
	}
}

// objectMembers iterates over the members of an object, calling fn with the
// raw (unescaped) key; fn must consume the member's value.
func (d *jsonDecoder) objectMembers(fn func(key []byte) error) error {
	if d.pos >= len(d.data) || d.data[d.pos] != '{' {
		return d.fail("expecting object")
	}
	if err := d.enter(); err != nil {
		return err
	}
	d.pos++
	d.skipWS()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return nil
	}
	for {
		d.skipWS()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return d.fail("expecting property name enclosed in double quotes")
		}
		key, err := d.rawString()
		if err != nil {
			return err
		}
		d.skipWS()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return d.fail("expecting ':' delimiter")
		}
		d.pos++
		d.skipWS()
		if err := fn(key); err != nil {
			return err
		}
		d.skipWS()
		if d.pos >= len(d.data) {
			return d.fail("unterminated object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			d.depth--
			return nil
		default:
			return d.fail("expecting ',' delimiter")
		}
	}
}

func (d *jsonDecoder) object() (any, error) {
	return d.objectSized(0)
}

// objectSized parses an object into a map pre-sized for hint members.
func (d *jsonDecoder) objectSized(hint int) (any, error) {
	m := make(map[string]any, hint)
	err := d.objectMembers(func(key []byte) error {
		k, ok := internKey(key)
		if !ok {
			k = d.text(key)
		}
		v, err := d.value()
		if err != nil {
			return err
		}
		m[k] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	if d.markers && len(m) == 2 {
		if t, ok := m["__type__"]; ok {
			if v, ok := m["__value__"]; ok {
				return decodeMarker(t, v)
			}
		}
	}
	return m, nil
}

// internKey returns well-known keys without allocating; ok is false for
// any other key, which the caller must copy. A switch on the
// bytes compiles to length and content comparisons without hashing, which
// is cheaper than a map lookup for these short keys.
func internKey(b []byte) (key string, ok bool) {
	switch string(b) {
	case "lang":
		return "lang", true
	case "task":
		return "task", true
	case "id":
		return "id", true
	case "shadow":
		return "shadow", true
	case "eta":
		return "eta", true
	case "expires":
		return "expires", true
	case "group":
		return "group", true
	case "group_index":
		return "group_index", true
	case "retries":
		return "retries", true
	case "timelimit":
		return "timelimit", true
	case "root_id":
		return "root_id", true
	case "parent_id":
		return "parent_id", true
	case "argsrepr":
		return "argsrepr", true
	case "kwargsrepr":
		return "kwargsrepr", true
	case "origin":
		return "origin", true
	case "ignore_result":
		return "ignore_result", true
	case "replaced_task_nesting":
		return "replaced_task_nesting", true
	case "stamped_headers":
		return "stamped_headers", true
	case "stamps":
		return "stamps", true
	case "compression":
		return "compression", true
	case "redelivered":
		return "redelivered", true
	case "callbacks":
		return "callbacks", true
	case "errbacks":
		return "errbacks", true
	case "chain":
		return "chain", true
	case "chord":
		return "chord", true
	case "args":
		return "args", true
	case "kwargs":
		return "kwargs", true
	case "options":
		return "options", true
	case "subtask_type":
		return "subtask_type", true
	case "immutable":
		return "immutable", true
	case "task_id":
		return "task_id", true
	case "reply_to":
		return "reply_to", true
	case "group_id":
		return "group_id", true
	case "status":
		return "status", true
	case "result":
		return "result", true
	case "traceback":
		return "traceback", true
	case "children":
		return "children", true
	case "date_done":
		return "date_done", true
	case "name":
		return "name", true
	case "worker":
		return "worker", true
	case "queue":
		return "queue", true
	case "delivery_info":
		return "delivery_info", true
	case "__type__":
		return "__type__", true
	case "__value__":
		return "__value__", true
	case "hex":
		return "hex", true
	case "exc_type":
		return "exc_type", true
	case "exc_message":
		return "exc_message", true
	case "exc_module":
		return "exc_module", true
	}
	return "", false
}

func (d *jsonDecoder) str() (any, error) {
	b, err := d.rawString()
	if err != nil {
		return nil, err
	}
	return d.text(b), nil
}

// rawString parses a JSON string at d.pos and returns its unescaped UTF-8
// bytes. The result aliases either the input or d.buf; copy before keeping.
func (d *jsonDecoder) rawString() ([]byte, error) {
	d.pos++ // opening quote
	start := d.pos
	nonASCII := false
	// Skip eight plain bytes at a time: none of them a quote, a backslash,
	// a control character or non-ASCII. Any word holding one of those is
	// handled byte by byte below.
	i := start
	for ; i+8 <= len(d.data); i += 8 {
		if !plainWord(binary.LittleEndian.Uint64(d.data[i:])) {
			break
		}
	}
	for ; i < len(d.data); i++ {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			s := d.data[start:i]
			if nonASCII && !utf8.Valid(s) {
				return nil, d.fail("invalid UTF-8 in string")
			}
			return s, nil
		case c == '\\':
			d.pos = i
			return d.escapedString(start)
		case c < 0x20:
			d.pos = i
			return nil, d.fail("invalid control character in string")
		case c >= 0x80:
			nonASCII = true
		}
	}
	d.pos = len(d.data)
	return nil, d.fail("unterminated string")
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainWord reports whether none of w's eight bytes is '"', '\\', below
// 0x20 or above 0x7f. Each test flags a byte by its high bit: x-ones
// borrows into the high bit of a byte that was zero, and &^x keeps it only
// where the byte's own high bit was clear.
func plainWord(w uint64) bool {
	if w&highs != 0 {
		return false
	}
	quote := w ^ (ones * '"')
	backslash := w ^ (ones * '\\')
	control := w - ones*0x20 // borrows where a byte is below 0x20
	return ((quote-ones)&^quote|(backslash-ones)&^backslash|control&^w)&highs == 0
}

func (d *jsonDecoder) escapedString(start int) ([]byte, error) {
	buf := append(d.buf[:0], d.data[start:d.pos]...)
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			d.buf = buf
			if !utf8.Valid(buf) {
				return nil, d.fail("invalid UTF-8 in string")
			}
			return buf, nil
		case c < 0x20:
			return nil, d.fail("invalid control character in string")
		case c != '\\':
			buf = append(buf, c)
			d.pos++
			continue
		}
		// escape
		if d.pos+1 >= len(d.data) {
			return nil, d.fail("unterminated string")
		}
		e := d.data[d.pos+1]
		d.pos += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, d.fail("invalid \\uXXXX escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if r < 0xdc00 && d.pos+1 < len(d.data) && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
					save := d.pos
					d.pos += 2
					lo, ok := d.hex4()
					if ok && lo >= 0xdc00 && lo <= 0xdfff {
						r2 = utf16.DecodeRune(r, lo)
					} else {
						d.pos = save // lone surrogate: keep the next escape
					}
				}
				r = r2 // lone surrogates cannot live in Go strings: U+FFFD
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, d.fail("invalid \\escape")
		}
	}
	d.buf = buf
	return nil, d.fail("unterminated string")
}

func (d *jsonDecoder) hex4() (rune, bool) {
	if d.pos+4 > len(d.data) {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}

func (d *jsonDecoder) number() (any, error) {
	start := d.pos
	if d.data[d.pos] == '-' {
		d.pos++
		if d.expect("Infinity") {
			return math.Inf(-1), nil
		}
	}
	if d.pos >= len(d.data) {
		return nil, d.fail("expecting value")
	}
	switch c := d.data[d.pos]; {
	case c == '0':
		d.pos++
	case c >= '1' && c <= '9':
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
		}
	default:
		d.pos = start
		return nil, d.fail("expecting value")
	}
	intEnd := d.pos
	isFloat := false
	if d.pos+1 < len(d.data) && d.data[d.pos] == '.' && isDigit(d.data[d.pos+1]) {
		isFloat = true
		d.pos += 2
		for d.pos < len(d.data) && isDigit(d.data[d.pos]) {
			d.pos++
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		p := d.pos + 1
		if p < len(d.data) && (d.data[p] == '+' || d.data[p] == '-') {
			p++
		}
		if p < len(d.data) && isDigit(d.data[p]) {
			isFloat = true
			for p < len(d.data) && isDigit(d.data[p]) {
				p++
			}
			d.pos = p
		}
	}
	lit := d.data[start:d.pos]
	if isFloat {
		f, err := strconv.ParseFloat(string(lit), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, d.fail("bad number")
		}
		return f, nil // out of range: ±Inf or 0, as Python's float()
	}
	_ = intEnd
	return parseIntLiteral(lit), nil
}

// parseIntLiteral converts a validated integer literal to int64, or *big.Int
// when it does not fit.
func parseIntLiteral(lit []byte) any {
	neg := lit[0] == '-'
	digits := lit
	if neg {
		digits = lit[1:]
	}
	if len(digits) <= 18 {
		var v int64
		for _, c := range digits {
			v = v*10 + int64(c-'0')
		}
		if neg {
			v = -v
		}
		return v
	}
	if v, err := strconv.ParseInt(string(lit), 10, 64); err == nil {
		return v
	}
	b, _ := new(big.Int).SetString(string(lit), 10)
	return b
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skipValue parses and discards one value.
func (d *jsonDecoder) skipValue() error {
	_, err := d.value()
	return err
}

// decodeMarker converts a kombu >= 5.3 {"__type__": t, "__value__": v}
// object into its Go value.
func decodeMarker(t, v any) (any, error) {
	typ, ok := t.(string)
	if !ok {
		return nil, fmt.Errorf("unsupported type marker %v", t)
	}
	switch typ {
	case "datetime":
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("datetime marker value is not a string")
		}
		return parseISODateTime(s)
	case "date":
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("date marker value is not a string")
		}
		tm, err := parseISODateTime(s)
		if err != nil {
			return nil, err
		}
		y, m, dd := tm.Date()
		return Date{Year: y, Month: m, Day: dd}, nil
	case "time":
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("time marker value is not a string")
		}
		tod, ok := parseISOTime(s)
		if !ok {
			return nil, errors.New("invalid isoformat time string: " + quoteShort(s))
		}
		return tod, nil
	case "decimal":
		switch x := v.(type) {
		case string:
			return parseDecimal(x)
		case int64:
			return Decimal(strconv.FormatInt(x, 10)), nil
		case *big.Int:
			return Decimal(x.String()), nil
		case float64:
			return Decimal(strconv.FormatFloat(x, 'g', -1, 64)), nil
		}
		return nil, errors.New("decimal marker value is not a string")
	case "uuid":
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, errors.New("uuid marker value is not {\"hex\": ...}")
		}
		h, ok := m["hex"].(string)
		if !ok {
			return nil, errors.New("uuid marker value is not {\"hex\": ...}")
		}
		return ParseUUID(h)
	case "bytes":
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("bytes marker value is not a string")
		}
		return []byte(s), nil
	case "base64":
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("base64 marker value is not a string")
		}
		return decodeBase64Lenient([]byte(s))
	}
	return nil, fmt.Errorf("unsupported type marker %q", typ)
}

// parseDecimal validates s as Python's Decimal() constructor would (leading
// and trailing whitespace and underscores between digits allowed) and keeps
// the stripped text.
func parseDecimal(s string) (Decimal, error) {
	t := trimSpace(s)
	if !validDecimal(t) {
		return "", errors.New("invalid decimal literal: " + quoteShort(s))
	}
	return Decimal(t), nil
}

func trimSpace(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t' || s[j-1] == '\n' || s[j-1] == '\r' || s[j-1] == '\f' || s[j-1] == '\v') {
		j--
	}
	return s[i:j]
}

func validDecimal(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	switch lower(s) {
	case "inf", "infinity", "nan", "snan":
		return true
	}
	if len(s) > 3 && (lower(s[:3]) == "nan" || lower(s[:4]) == "snan") {
		p := s[3:]
		if lower(s[:4]) == "snan" {
			p = s[4:]
		}
		return allDigits(p)
	}
	mant, exp := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == 'e' || s[i] == 'E' {
			mant, exp = s[:i], s[i+1:]
			if exp == "" {
				return false
			}
			break
		}
	}
	intPart, frac := mant, ""
	for i := 0; i < len(mant); i++ {
		if mant[i] == '.' {
			intPart, frac = mant[:i], mant[i+1:]
			break
		}
	}
	if intPart == "" && frac == "" {
		return false
	}
	if (intPart != "" && !allDigits(intPart)) || (frac != "" && !allDigits(frac)) {
		return false
	}
	if exp != "" {
		if exp[0] == '+' || exp[0] == '-' {
			exp = exp[1:]
		}
		if !allDigits(exp) {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && !(s[i] == '_' && i > 0 && i < len(s)-1 && isDigit(s[i-1]) && isDigit(s[i+1])) {
			return false
		}
	}
	return true
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

// decodeBase64Lenient decodes standard base64 like Python's b64decode with
// validate=False: characters outside the alphabet are discarded first.
func decodeBase64Lenient(src []byte) ([]byte, error) {
	out := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, err := base64.StdEncoding.Decode(out, src)
	if err == nil {
		return out[:n], nil
	}
	clean := make([]byte, 0, len(src))
	for _, c := range src {
		if (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=' {
			clean = append(clean, c)
		}
	}
	n, err = base64.StdEncoding.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("invalid base64: %w", err)
	}
	return out[:n], nil
}
