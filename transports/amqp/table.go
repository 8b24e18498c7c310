package amqptransport

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// fromTable converts an AMQP field table to plain Go values as Python's
// py-amqp would see them: integers of every width become int64, float32
// becomes float64, void becomes nil, arrays become []any, nested tables
// become map[string]any. Decimals become their exact decimal string (kombu
// 5.2 serializes Decimal as a string too); byte arrays stay []byte and
// timestamps stay time.Time (UTC).
func fromTable(t amqp.Table) map[string]any {
	if t == nil {
		return nil
	}
	m := make(map[string]any, len(t))
	for k, v := range t {
		m[k] = fromField(v)
	}
	return m
}

func fromField(v any) any {
	switch x := v.(type) {
	case nil, bool, string, float64, int64, []byte:
		return x
	case int8:
		return int64(x)
	case uint8:
		return int64(x)
	case int16:
		return int64(x)
	case uint16:
		return int64(x)
	case int32:
		return int64(x)
	case uint32:
		return int64(x)
	case int:
		return int64(x)
	case float32:
		return float64(x)
	case amqp.Decimal:
		return decimalString(x)
	case time.Time:
		return x.UTC()
	case amqp.Table:
		return fromTable(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromField(e)
		}
		return out
	default:
		return x
	}
}

// decimalString renders an AMQP decimal (value × 10^-scale) exactly.
func decimalString(d amqp.Decimal) string {
	r := new(big.Rat).SetFrac(big.NewInt(int64(d.Value)), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d.Scale)), nil))
	return r.FloatString(int(d.Scale))
}

// toTable converts plain Go values to an amqp.Table the way py-amqp encodes
// Python values: integers that fit in a signed 32-bit field are sent as
// int32 ("I"), larger ones as int64 ("l"); nil is void.
func toTable(m map[string]any) (amqp.Table, error) {
	if m == nil {
		return nil, nil
	}
	t := make(amqp.Table, len(m))
	for k, v := range m {
		f, err := toField(v)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		t[k] = f
	}
	return t, nil
}

func intField(v int64) any {
	if v > math.MaxInt32 || v < -math.MaxInt32 {
		return v
	}
	return int32(v)
}

func toField(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, float64, []byte, amqp.Decimal:
		return x, nil
	case int:
		return intField(int64(x)), nil
	case int8:
		return int32(x), nil
	case int16:
		return int32(x), nil
	case int32:
		return x, nil
	case int64:
		return intField(x), nil
	case uint8:
		return int32(x), nil
	case uint16:
		return int32(x), nil
	case uint32:
		return intField(int64(x)), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d out of range", x)
		}
		return intField(int64(x)), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("integer %d out of range", x)
		}
		return intField(int64(x)), nil
	case float32:
		return float64(x), nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return intField(i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return nil, err
		}
		return f, nil
	case time.Time:
		return x, nil
	case amqp.Table:
		return toTable(map[string]any(x))
	case map[string]any:
		return toTable(x)
	case map[string]string:
		t := make(amqp.Table, len(x))
		for k, s := range x {
			t[k] = s
		}
		return t, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			f, err := toField(e)
			if err != nil {
				return nil, err
			}
			out[i] = f
		}
		return out, nil
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unsupported AMQP field type %T", v)
	}
}
