package protocolv2

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Tuple is a Python tuple for SafeRepr: it renders as (a, b) and (a,)
// instead of [a, b]. Decoded values never contain tuples (JSON and msgpack
// have none); args are rendered as a tuple, as Celery does.
type Tuple []any

// reprMaxLevels is saferepr's default nesting limit.
const reprMaxLevels = 3

// PyRepr renders v the way Celery renders argsrepr, kwargsrepr and the
// "succeeded in 0.01s: <result>" log line: celery.utils.saferepr with a
// 1024-character limit. See SafeRepr.
func PyRepr(v any) string { return SafeRepr(v, ArgsReprMaxSize) }

// ArgsRepr renders positional arguments as Celery's argsrepr header:
// SafeRepr(Tuple(args), 1024), e.g. "(2, 3)" or "(7,)".
func ArgsRepr(args []any) string { return SafeRepr(Tuple(args), ArgsReprMaxSize) }

// KwargsRepr renders keyword arguments as Celery's kwargsrepr header,
// e.g. "{'x': 1, 'y': 2}" (keys sorted, as Go maps have no order).
func KwargsRepr(kwargs map[string]any) string { return SafeRepr(kwargs, ArgsReprMaxSize) }

// SafeRepr is a port of Celery's saferepr(o, maxlen) (celery/utils/saferepr.py),
// which looks like Python's repr() with these differences, all kept here
// because Python workers produce exactly this:
//
//   - strings are wrapped in single quotes with only ' escaped (\'); other
//     characters, newlines included, are written as they are;
//   - bytes are b'<utf-8 text>' when valid UTF-8, else b'<hex>';
//   - containers nested deeper than 3 levels render as [...], {...}, (...);
//   - with maxlen > 0 the output is cut after about maxlen characters:
//     strings and scalars are shortened with "...", the rest of the
//     structure is replaced by ", ..." and the open brackets are closed.
//
// None/True/False, ints (*big.Int too) and floats (1.0, 1e-05, 1e+16, inf,
// nan) follow Python; time.Time renders as datetime.datetime(...) with its
// tzinfo, Tuple as a tuple, []any and other slices as lists, maps as dicts
// with sorted keys. maxlen <= 0 means no limit.
func SafeRepr(v any, maxlen int) string {
	r := reprState{limited: maxlen > 0, maxlen: maxlen}
	r.run(v)
	return r.out.String()
}

type lit struct {
	s     string
	trunc bool // separators are dropped when closing a truncated repr
	dir   int8
}

var (
	litDictStart  = lit{"{", false, 1}
	litDictKVSep  = lit{": ", true, 0}
	litDictEnd    = lit{"}", false, -1}
	litListStart  = lit{"[", false, 1}
	litListEnd    = lit{"]", false, -1}
	litSep        = lit{", ", true, 0}
	litTupleStart = lit{"(", false, 1}
	litTupleEnd   = lit{")", false, -1}
	litTupleEndSV = lit{",)", false, -1}
)

type itemKind uint8

const (
	itemValue itemKind = iota
	itemLit
	itemKey
)

type item struct {
	kind itemKind
	lit  lit
	v    any
	key  string
}

// frame lazily yields the token sequence of one container:
// start, e0, sep, e1, ..., end (dicts: start, k0, ': ', v0, sep, ...).
type frame struct {
	start, end lit
	elems      []any    // list/tuple elements, or dict values (parallel to keys)
	keys       []string // non-nil for dicts
	dict       bool
	j, n       int // position and total length of the sequence
}

func newFrame(start, end lit, elems []any, keys []string, dict bool) *frame {
	f := &frame{start: start, end: end, elems: elems, keys: keys, dict: dict}
	per := 2
	if dict {
		per = 4
	}
	f.n = 2
	if k := len(elems); k > 0 {
		f.n += per*k - 1
	}
	return f
}

func (f *frame) next() (item, bool) {
	if f.j >= f.n {
		return item{}, false
	}
	j := f.j
	f.j++
	switch {
	case j == 0:
		return item{kind: itemLit, lit: f.start}, true
	case j == f.n-1:
		return item{kind: itemLit, lit: f.end}, true
	}
	k := j - 1
	if !f.dict {
		if k%2 == 0 {
			return item{kind: itemValue, v: f.elems[k/2]}, true
		}
		return item{kind: itemLit, lit: litSep}, true
	}
	switch k % 4 {
	case 0:
		return item{kind: itemKey, key: f.keys[k/4]}, true
	case 1:
		return item{kind: itemLit, lit: litDictKVSep}, true
	case 2:
		return item{kind: itemValue, v: f.elems[k/4]}, true
	}
	return item{kind: itemLit, lit: litSep}, true
}

type reprState struct {
	out     strings.Builder
	limited bool
	maxlen  int
	level   int
	stack   []*frame
	root    any
	rootOK  bool
}

func (r *reprState) nextItem() (item, bool) {
	if r.rootOK {
		r.rootOK = false
		return item{kind: itemValue, v: r.root}, true
	}
	for len(r.stack) > 0 {
		if it, ok := r.stack[len(r.stack)-1].next(); ok {
			return it, true
		}
		r.stack = r.stack[:len(r.stack)-1]
	}
	return item{}, false
}

func (r *reprState) run(v any) {
	r.root, r.rootOK = v, true
	for {
		it, ok := r.nextItem()
		if !ok {
			return
		}
		var tok string
		switch it.kind {
		case itemLit:
			r.level += int(it.lit.dir)
			if r.stop() {
				return
			}
			tok = it.lit.s
		case itemKey:
			if r.stop() {
				return
			}
			tok = formatChars(it.key, r.limit())
		case itemValue:
			text, quoted, fr := classify(it.v)
			if fr != nil {
				if r.level >= reprMaxLevels {
					text = fr.start.s + "..." + fr.end.s
				} else {
					r.stack = append(r.stack, fr)
					continue
				}
			}
			if r.stop() {
				return
			}
			switch q := quoted.(type) {
			case string:
				tok = formatChars(q, r.limit())
			case []byte:
				tok = formatBytes(q, r.limit())
			default:
				tok = truncateText(text, r.limit())
			}
		}
		r.out.WriteString(tok)
		if r.limited {
			r.maxlen -= utf8.RuneCountInString(tok)
		}
	}
}

func (r *reprState) limit() int {
	if !r.limited {
		return 0
	}
	return r.maxlen
}

// stop implements saferepr's cut-off: once the budget is spent, the token
// at hand is dropped, ", ..." is written and every pending closing bracket
// is emitted.
func (r *reprState) stop() bool {
	if !r.limited || r.maxlen > 0 {
		return false
	}
	r.out.WriteString(", ...")
	for i := len(r.stack) - 1; i >= 0; i-- {
		f := r.stack[i]
		for {
			it, ok := f.next()
			if !ok {
				break
			}
			if it.kind == itemLit && !it.lit.trunc {
				r.out.WriteString(it.lit.s)
			}
		}
	}
	r.stack = r.stack[:0]
	return true
}

// truncateText is celery.utils.text.truncate: when s has maxlen or more
// characters, keep the first maxlen, cut back to the last space and append
// "...".
func truncateText(s string, maxlen int) string {
	if maxlen <= 0 || len(s) < maxlen || utf8.RuneCountInString(s) < maxlen {
		return s
	}
	cut := s
	n := 0
	for i := range s {
		if n == maxlen {
			cut = s[:i]
			break
		}
		n++
	}
	if sp := strings.LastIndexByte(cut, ' '); sp >= 0 {
		cut = cut[:sp]
	}
	return cut + "..."
}

func formatChars(s string, maxlen int) string {
	s = truncateText(s, maxlen)
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		b.WriteString(`\'`)
		s = s[i+1:]
	}
	b.WriteByte('\'')
	return b.String()
}

func formatBytes(p []byte, maxlen int) string {
	ellipsis := ""
	if maxlen > 0 && len(p) > maxlen {
		p = p[:maxlen]
		ellipsis = "..."
	}
	var body string
	if utf8.Valid(p) {
		body = string(p)
	} else {
		body = fmt.Sprintf("%x", p)
	}
	return "b'" + body + ellipsis + "'"
}

// classify returns the text of a scalar, the string/bytes to quote, or the
// frame of a container.
func classify(v any) (text string, quoted any, fr *frame) {
	switch x := v.(type) {
	case nil:
		return "None", nil, nil
	case bool:
		if x {
			return "True", nil, nil
		}
		return "False", nil, nil
	case string:
		return "", x, nil
	case []byte:
		return "", x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil, nil
	case int:
		return strconv.Itoa(x), nil, nil
	case float64:
		return FormatPyFloat(x), nil, nil
	case float32:
		return FormatPyFloat(float64(x)), nil, nil
	case *big.Int:
		if x == nil {
			return "None", nil, nil
		}
		return x.String(), nil, nil
	case time.Time:
		return reprDatetime(x), nil, nil
	case Tuple:
		end := litTupleEnd
		if len(x) == 1 {
			end = litTupleEndSV
		}
		return "", nil, newFrame(litTupleStart, end, x, nil, false)
	case []any:
		return "", nil, newFrame(litListStart, litListEnd, x, nil, false)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		vals := make([]any, len(keys))
		for i, k := range keys {
			vals[i] = x[k]
		}
		return "", nil, newFrame(litDictStart, litDictEnd, vals, keys, true)
	}
	if s, ok := kombuRepr(v); ok {
		return s, nil, nil
	}
	return reflectRepr(v)
}

// reflectRepr covers Go values that are not in kombu's value model (typed
// slices and maps, other integer kinds, Stringers).
func reflectRepr(v any) (string, any, *frame) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(rv.Uint(), 10), nil, nil
	case reflect.Float32, reflect.Float64:
		return FormatPyFloat(rv.Float()), nil, nil
	case reflect.Bool:
		if rv.Bool() {
			return "True", nil, nil
		}
		return "False", nil, nil
	case reflect.String:
		return "", rv.String(), nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return "None", nil, nil
		}
		elems := make([]any, rv.Len())
		for i := range elems {
			elems[i] = rv.Index(i).Interface()
		}
		return "", nil, newFrame(litListStart, litListEnd, elems, nil, false)
	case reflect.Map:
		if rv.IsNil() {
			return "None", nil, nil
		}
		type kv struct {
			k string
			v any
		}
		pairs := make([]kv, 0, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			pairs = append(pairs, kv{fmt.Sprint(iter.Key().Interface()), iter.Value().Interface()})
		}
		slices.SortFunc(pairs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
		keys := make([]string, len(pairs))
		vals := make([]any, len(pairs))
		for i, p := range pairs {
			keys[i], vals[i] = p.k, p.v
		}
		return "", nil, newFrame(litDictStart, litDictEnd, vals, keys, true)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return "None", nil, nil
		}
		return classify(rv.Elem().Interface())
	}
	if s, ok := v.(fmt.Stringer); ok {
		return s.String(), nil, nil
	}
	return fmt.Sprint(v), nil, nil
}

// FormatPyFloat formats f as Python's repr(float): the shortest
// round-tripping digits, fixed notation for exponents -4..15 (always with a
// fraction: 1.0), scientific otherwise (1e-05, 1.5e+300), inf/-inf/nan.
func FormatPyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // [-]d[.ddd]e±XX
	neg := e[0] == '-'
	if neg {
		e = e[1:]
	}
	ei := strings.IndexByte(e, 'e')
	mant, expStr := e[:ei], e[ei+1:]
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	switch {
	case exp < -4 || exp >= 16:
		b.WriteString(mant)
		b.WriteByte('e')
		if exp < 0 {
			b.WriteByte('-')
			exp = -exp
		} else {
			b.WriteByte('+')
		}
		if exp < 10 {
			b.WriteByte('0')
		}
		b.WriteString(strconv.Itoa(exp))
	case exp < 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -exp-1))
		b.WriteString(digits)
	default:
		if len(digits) <= exp+1 {
			b.WriteString(digits)
			b.WriteString(strings.Repeat("0", exp+1-len(digits)))
			b.WriteString(".0")
		} else {
			b.WriteString(digits[:exp+1])
			b.WriteByte('.')
			b.WriteString(digits[exp+1:])
		}
	}
	return b.String()
}

// reprDatetime renders a datetime.datetime repr; naive for kombu.Naive.
func reprDatetime(t time.Time) string {
	if IsNaive(t) {
		return "datetime.datetime(" + clockFields(t, true) + ")"
	}
	_, off := t.Zone()
	return "datetime.datetime(" + clockFields(t, true) + ", tzinfo=" + reprTimezone(off) + ")"
}

// clockFields lists year, month, day (when withDate), hour, minute and
// second/microsecond unless trailing zeros, as Python's reprs do.
func clockFields(t time.Time, withDate bool) string {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	us := t.Nanosecond() / 1000
	var f []int
	if withDate {
		f = []int{y, int(mo), d, h, mi, s, us}
	} else {
		f = []int{h, mi, s, us}
	}
	return timeFields(f)
}

func timeFields(f []int) string {
	if f[len(f)-1] == 0 {
		f = f[:len(f)-1]
		if f[len(f)-1] == 0 {
			f = f[:len(f)-1]
		}
	}
	var b strings.Builder
	for i, n := range f {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// reprTimezone renders datetime.timezone for a fixed offset in seconds.
func reprTimezone(off int) string {
	if off == 0 {
		return "datetime.timezone.utc"
	}
	days, secs := off/86400, off%86400
	if secs < 0 {
		days--
		secs += 86400
	}
	var td string
	switch {
	case days != 0 && secs != 0:
		td = fmt.Sprintf("days=%d, seconds=%d", days, secs)
	case days != 0:
		td = fmt.Sprintf("days=%d", days)
	default:
		td = fmt.Sprintf("seconds=%d", secs)
	}
	return "datetime.timezone(datetime.timedelta(" + td + "))"
}
