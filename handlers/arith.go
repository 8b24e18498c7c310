package handlers

import (
	"fmt"
	"math/big"

	"github.com/celerity-go/celerity"
)

// Python's int is unbounded: int64 results that overflow continue as
// *big.Int, and floats win over ints, as in Python.

func toBig(v any) (*big.Int, bool) {
	switch x := v.(type) {
	case int64:
		return big.NewInt(x), true
	case bool:
		if x {
			return big.NewInt(1), true
		}
		return big.NewInt(0), true
	case *big.Int:
		return x, true
	}
	return nil, false
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, true
	}
	return 0, false
}

func isFloat(v any) bool { _, ok := v.(float64); return ok }

// normInt returns an int64 when z fits, else z.
func normInt(z *big.Int) any {
	if z.IsInt64() {
		return z.Int64()
	}
	return z
}

func opError(op string, x, y any) error {
	return celerity.TypeError(fmt.Sprintf("unsupported operand type(s) for %s: '%s' and '%s'", op, celerity.PyTypeName(x), celerity.PyTypeName(y)))
}

// Add is Python's x + y for numbers, strings and lists.
func Add(x, y any) (any, error) {
	if isFloat(x) || isFloat(y) {
		a, ok1 := toFloat(x)
		b, ok2 := toFloat(y)
		if ok1 && ok2 {
			return a + b, nil
		}
		return nil, opError("+", x, y)
	}
	if a, ok := x.(int64); ok {
		if b, ok := y.(int64); ok {
			if s := a + b; (s > a) == (b > 0) {
				return s, nil
			}
		}
	}
	if a, ok := toBig(x); ok {
		if b, ok := toBig(y); ok {
			return normInt(new(big.Int).Add(a, b)), nil
		}
	}
	switch a := x.(type) {
	case string:
		if b, ok := y.(string); ok {
			return a + b, nil
		}
	case []any:
		if b, ok := y.([]any); ok {
			return append(append([]any{}, a...), b...), nil
		}
	}
	return nil, opError("+", x, y)
}

// Mul is Python's x * y for numbers (and str/list repetition by an int).
func Mul(x, y any) (any, error) {
	if isFloat(x) || isFloat(y) {
		a, ok1 := toFloat(x)
		b, ok2 := toFloat(y)
		if ok1 && ok2 {
			return a * b, nil
		}
		return nil, opError("*", x, y)
	}
	if a, ok := toBig(x); ok {
		if b, ok := toBig(y); ok {
			return normInt(new(big.Int).Mul(a, b)), nil
		}
		if s, ok := y.(string); ok && a.IsInt64() {
			return repeatString(s, a.Int64()), nil
		}
	}
	if s, ok := x.(string); ok {
		if n, ok := y.(int64); ok {
			return repeatString(s, n), nil
		}
	}
	return nil, opError("*", x, y)
}

func repeatString(s string, n int64) string {
	out := ""
	for i := int64(0); i < n && i < 1<<20; i++ {
		out += s
	}
	return out
}

// Sum is Python's sum(numbers).
func Sum(numbers []any) (any, error) {
	var acc any = int64(0)
	for _, n := range numbers {
		switch n.(type) {
		case string, []any:
			return nil, opError("+", acc, n)
		}
		var err error
		if acc, err = Add(acc, n); err != nil {
			return nil, err
		}
	}
	return acc, nil
}
