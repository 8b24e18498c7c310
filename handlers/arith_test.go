package handlers

import (
	"errors"
	"math/big"
	"reflect"
	"testing"

	"github.com/celerity-go/celerity"
)

func bigOf(s string) *big.Int {
	z, _ := new(big.Int).SetString(s, 10)
	return z
}

func TestAddFollowsPython(t *testing.T) {
	tests := []struct {
		x, y, want any
	}{
		{int64(2), int64(3), int64(5)},
		{int64(2), 1.5, 3.5},
		{1.5, int64(2), 3.5},
		{int64(1) << 62, int64(1) << 62, bigOf("9223372036854775808")},
		{int64(-1) << 63, int64(-1), bigOf("-9223372036854775809")},
		{bigOf("9223372036854775808"), int64(-1), int64(9223372036854775807)},
		{"a", "b", "ab"},
		{[]any{int64(1)}, []any{"x"}, []any{int64(1), "x"}},
		{true, int64(1), int64(2)},
	}
	for _, tc := range tests {
		got, err := Add(tc.x, tc.y)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Add(%v, %v) = %#v, %v; want %#v", tc.x, tc.y, got, err, tc.want)
		}
	}
	_, err := Add(int64(1), "a")
	var pe *celerity.PyError
	if !errors.As(err, &pe) || pe.Type != "TypeError" || pe.Args[0] != "unsupported operand type(s) for +: 'int' and 'str'" {
		t.Errorf("Add(1, 'a') error %v", err)
	}
}

func TestMulAndSum(t *testing.T) {
	if got, _ := Mul(int64(6), int64(7)); got != int64(42) {
		t.Errorf("Mul = %v", got)
	}
	if got, _ := Mul(int64(1)<<40, int64(1)<<40); !reflect.DeepEqual(got, bigOf("1208925819614629174706176")) {
		t.Errorf("big Mul = %v", got)
	}
	if got, _ := Mul("ab", int64(3)); got != "ababab" {
		t.Errorf("str Mul = %v", got)
	}
	if got, _ := Mul(2.5, int64(2)); got != 5.0 {
		t.Errorf("float Mul = %v", got)
	}
	if got, _ := Sum([]any{int64(2), int64(4), int64(6)}); got != int64(12) {
		t.Errorf("Sum = %v", got)
	}
	if got, _ := Sum([]any{int64(1), 0.5}); got != 1.5 {
		t.Errorf("float Sum = %v", got)
	}
	if got, _ := Sum(nil); got != int64(0) {
		t.Errorf("empty Sum = %v", got)
	}
	if _, err := Sum([]any{"a"}); err == nil {
		t.Error("Sum of strings should be a TypeError")
	}
}
