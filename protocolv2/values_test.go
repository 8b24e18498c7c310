package protocolv2

import (
	"math/big"
	"testing"
)

// PyEqual compares numbers by value across the types the decoders give
// them, as Python's == does, and everything else deeply.
func TestPyEqual(t *testing.T) {
	for _, c := range []struct {
		a, b any
		want bool
	}{
		{int64(7), 7.0, true},
		{7.5, int64(7), false},
		{big.NewInt(1 << 62), float64(1 << 62), true},
		{"7", int64(7), false},
		{"v1", "v1", true},
		{[]any{"a"}, []any{"a"}, true},
		{nil, nil, true},
		{nil, int64(0), false},
	} {
		if got := PyEqual(c.a, c.b); got != c.want {
			t.Errorf("PyEqual(%#v, %#v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
