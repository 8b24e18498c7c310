package protocolv2

import (
	"math"
	"math/big"
	"reflect"
)

// asString accepts a string (or []byte, as some AMQP tables carry text).
func asString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	}
	return "", false
}

// asInt accepts any Go integer, an integral float64 and a *big.Int that
// fits in an int64.
func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	case uint:
		if uint64(x) <= math.MaxInt64 {
			return int64(x), true
		}
	case float64:
		if x == math.Trunc(x) && x >= -(1<<63) && x < 1<<63 {
			return int64(x), true
		}
	case float32:
		f := float64(x)
		if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
			return int64(f), true
		}
	case *big.Int:
		if x != nil && x.IsInt64() {
			return x.Int64(), true
		}
	}
	return 0, false
}

// asFloat accepts any number.
func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case *big.Int:
		if x == nil {
			return 0, false
		}
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, true
	}
	if i, ok := asInt(v); ok {
		return float64(i), true
	}
	return 0, false
}

// PyEqual reports whether two decoded values compare equal as Python
// compares them: numbers by value, whatever their decoded type (1 ==
// 1.0), anything else by deep equality.
func PyEqual(a, b any) bool {
	if fa, ok := asFloat(a); ok {
		fb, ok := asFloat(b)
		return ok && fa == fb
	}
	return reflect.DeepEqual(a, b)
}

// intFits reports whether i fits a Go int.
func intFits(i int64) bool { return int64(int(i)) == i }

// truthy mirrors Python truthiness for the scalar types headers carry.
func truthy(v any) (bool, bool) {
	switch x := v.(type) {
	case nil:
		return false, true
	case bool:
		return x, true
	case string:
		return x != "", true
	}
	if i, ok := asInt(v); ok {
		return i != 0, true
	}
	return false, false
}
