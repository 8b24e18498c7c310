package celerity

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"time"
	"unicode"

	"github.com/celerity-go/celerity/kombu"
)

type param struct {
	name     string
	index    int
	optional bool
}

// binder binds Python call arguments onto a struct, planned once per type.
type binder struct {
	typ     reflect.Type
	fn      string // the Python function name used in messages
	params  []param
	byName  map[string]int // parameter name → position in params
	varArgs int            // field index of "*", or -1
	varKw   int            // field index of "**", or -1
}

func newBinder(t reflect.Type, taskName string) (*binder, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("argument type %s is not a struct", t)
	}
	fn := taskName
	if i := strings.LastIndexByte(fn, '.'); i >= 0 {
		fn = fn[i+1:]
	}
	b := &binder{typ: t, fn: fn, byName: map[string]int{}, varArgs: -1, varKw: -1}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("celery")
		name, opt, _ := strings.Cut(tag, ",")
		switch name {
		case "-":
			continue
		case "*":
			if f.Type != reflect.TypeFor[[]any]() {
				return nil, fmt.Errorf("field %s: \"*\" needs type []any", f.Name)
			}
			b.varArgs = i
			continue
		case "**":
			if f.Type != reflect.TypeFor[map[string]any]() {
				return nil, fmt.Errorf("field %s: \"**\" needs type map[string]any", f.Name)
			}
			b.varKw = i
			continue
		case "":
			name = snakeCase(f.Name)
		}
		if _, dup := b.byName[name]; dup {
			return nil, fmt.Errorf("duplicate parameter %q", name)
		}
		b.byName[name] = len(b.params)
		b.params = append(b.params, param{name: name, index: i, optional: opt == "optional"})
	}
	return b, nil
}

// paramsType is the struct type the binder fills.
func (b *binder) paramsType() reflect.Type { return b.typ }

func snakeCase(s string) string {
	var sb strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				sb.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

func (b *binder) typeError(format string, a ...any) *PyError {
	return TypeError(b.fn + "() " + fmt.Sprintf(format, a...))
}

// bind assigns args and kwargs to dst (a settable struct value) or returns
// the TypeError Python would raise for the call.
func (b *binder) bind(args []any, kwargs map[string]any, dst reflect.Value) error {
	set := make([]bool, len(b.params))
	n := len(args)
	if n > len(b.params) {
		if b.varArgs < 0 {
			return b.tooMany(len(args))
		}
		n = len(b.params)
		dst.Field(b.varArgs).Set(reflect.ValueOf(append([]any(nil), args[n:]...)))
	}
	for i := 0; i < n; i++ {
		p := b.params[i]
		if err := assign(dst.Field(p.index), args[i]); err != nil {
			return b.typeError("argument '%s': %v", p.name, err)
		}
		set[i] = true
	}
	var extra map[string]any
	for k, v := range kwargs {
		i, ok := b.byName[k]
		if !ok {
			if b.varKw < 0 {
				return b.typeError("got an unexpected keyword argument '%s'", k)
			}
			if extra == nil {
				extra = map[string]any{}
			}
			extra[k] = v
			continue
		}
		if set[i] {
			return b.typeError("got multiple values for argument '%s'", k)
		}
		if err := assign(dst.Field(b.params[i].index), v); err != nil {
			return b.typeError("argument '%s': %v", k, err)
		}
		set[i] = true
	}
	if extra != nil {
		dst.Field(b.varKw).Set(reflect.ValueOf(extra))
	}
	var missing []string
	for i, p := range b.params {
		if !set[i] && !p.optional {
			missing = append(missing, "'"+p.name+"'")
		}
	}
	if len(missing) > 0 {
		word := "argument"
		if len(missing) > 1 {
			word = "arguments"
		}
		return b.typeError("missing %d required positional %s: %s", len(missing), word, pyJoin(missing))
	}
	return nil
}

func (b *binder) tooMany(given int) error {
	req := 0
	for _, p := range b.params {
		if !p.optional {
			req++
		}
	}
	takes := fmt.Sprint(len(b.params))
	if req != len(b.params) {
		takes = fmt.Sprintf("from %d to %d", req, len(b.params))
	}
	plural := "s"
	if takes == "1" {
		plural = ""
	}
	was := "were"
	if given == 1 {
		was = "was"
	}
	return b.typeError("takes %s positional argument%s but %d %s given", takes, plural, given, was)
}

// pyJoin joins names as Python's error messages do: 'a', 'a' and 'b',
// 'a', 'b', and 'c'.
func pyJoin(names []string) string {
	switch len(names) {
	case 1:
		return names[0]
	case 2:
		return names[0] + " and " + names[1]
	}
	return strings.Join(names[:len(names)-1], ", ") + ", and " + names[len(names)-1]
}

// PyTypeName names the Python type of a decoded value ("int", "str",
// "NoneType", …), for error messages shaped like Python's.
func PyTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	case []byte:
		return "bytes"
	case time.Time:
		return "datetime"
	case kombu.Decimal:
		return "Decimal"
	case kombu.UUID:
		return "UUID"
	}
	return fmt.Sprintf("%T", v)
}

var (
	typeTime  = reflect.TypeFor[time.Time]()
	typeBytes = reflect.TypeFor[[]byte]()
)

// assign stores the decoded value v into dst, converting between the
// decoded value model and the field's Go type.
func assign(dst reflect.Value, v any) error {
	mismatch := func() error {
		return fmt.Errorf("expected %s, got %s", dst.Type(), PyTypeName(v))
	}
	if dst.Kind() == reflect.Interface {
		if v == nil {
			dst.SetZero()
			return nil
		}
		rv := reflect.ValueOf(v)
		if !rv.Type().AssignableTo(dst.Type()) {
			return mismatch()
		}
		dst.Set(rv)
		return nil
	}
	if v == nil {
		switch dst.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map:
			dst.SetZero()
			return nil
		}
		return mismatch()
	}
	switch dst.Kind() {
	case reflect.Pointer:
		p := reflect.New(dst.Type().Elem())
		if err := assign(p.Elem(), v); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var n int64
		switch x := v.(type) {
		case int64:
			n = x
		case bool:
			if x {
				n = 1
			}
		default:
			return mismatch()
		}
		if dst.OverflowInt(n) {
			return fmt.Errorf("int %d out of range for %s", n, dst.Type())
		}
		dst.SetInt(n)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		x, ok := v.(int64)
		if !ok {
			if bi, isBig := v.(*big.Int); isBig && bi.IsUint64() {
				if dst.OverflowUint(bi.Uint64()) {
					return fmt.Errorf("int %s out of range for %s", bi, dst.Type())
				}
				dst.SetUint(bi.Uint64())
				return nil
			}
			return mismatch()
		}
		if x < 0 || dst.OverflowUint(uint64(x)) {
			return fmt.Errorf("int %d out of range for %s", x, dst.Type())
		}
		dst.SetUint(uint64(x))
		return nil
	case reflect.Float32, reflect.Float64:
		switch x := v.(type) {
		case float64:
			dst.SetFloat(x)
		case int64:
			dst.SetFloat(float64(x))
		case *big.Int:
			f, _ := new(big.Float).SetInt(x).Float64()
			if math.IsInf(f, 0) {
				return fmt.Errorf("int too large to convert to float")
			}
			dst.SetFloat(f)
		default:
			return mismatch()
		}
		return nil
	case reflect.Bool:
		x, ok := v.(bool)
		if !ok {
			return mismatch()
		}
		dst.SetBool(x)
		return nil
	case reflect.String:
		x, ok := v.(string)
		if !ok {
			return mismatch()
		}
		dst.SetString(x)
		return nil
	case reflect.Slice:
		if dst.Type() == typeBytes {
			switch x := v.(type) {
			case []byte:
				dst.SetBytes(x)
				return nil
			case string:
				dst.SetBytes([]byte(x))
				return nil
			}
		}
		xs, ok := v.([]any)
		if !ok {
			return mismatch()
		}
		s := reflect.MakeSlice(dst.Type(), len(xs), len(xs))
		for i, x := range xs {
			if err := assign(s.Index(i), x); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		dst.Set(s)
		return nil
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok || dst.Type().Key().Kind() != reflect.String {
			return mismatch()
		}
		out := reflect.MakeMapWithSize(dst.Type(), len(m))
		ev := reflect.New(dst.Type().Elem()).Elem()
		for k, x := range m {
			ev.SetZero()
			if err := assign(ev, x); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), ev)
		}
		dst.Set(out)
		return nil
	case reflect.Struct:
		if dst.Type() == typeTime {
			x, ok := v.(time.Time)
			if !ok {
				return mismatch()
			}
			dst.Set(reflect.ValueOf(x))
			return nil
		}
		rv := reflect.ValueOf(v)
		if rv.Type() == dst.Type() {
			dst.Set(rv)
			return nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		return assignStruct(dst, m)
	}
	rv := reflect.ValueOf(v)
	if rv.Type().AssignableTo(dst.Type()) {
		dst.Set(rv)
		return nil
	}
	return mismatch()
}

// assignStruct fills a nested struct from a dict by parameter names.
func assignStruct(dst reflect.Value, m map[string]any) error {
	t := dst.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("celery"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = snakeCase(f.Name)
		}
		v, ok := m[name]
		if !ok {
			continue
		}
		if err := assign(dst.Field(i), v); err != nil {
			return fmt.Errorf("field %q: %w", name, err)
		}
	}
	return nil
}
