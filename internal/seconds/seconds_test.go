package seconds

import (
	"math"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want time.Duration
	}{
		{0, 0},
		{1.5, 1500 * time.Millisecond},
		{86400, 24 * time.Hour},
		{9.2e9, 9_200_000_000 * time.Second},
		{9.3e9, math.MaxInt64},
		{1e300, math.MaxInt64},
		{math.Inf(1), math.MaxInt64},
		{math.NaN(), math.MaxInt64},
	} {
		if got := Duration(c.in); got != c.want {
			t.Errorf("Duration(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestNonNegative(t *testing.T) {
	if d, err := NonNegative(2.5); err != nil || d != 2500*time.Millisecond {
		t.Errorf("NonNegative(2.5) = %v, %v", d, err)
	}
	if d, err := NonNegative(1e300); err != nil || d != math.MaxInt64 {
		t.Errorf("NonNegative(1e300) = %v, %v", d, err)
	}
	for _, bad := range []float64{-1, math.Inf(-1), math.NaN()} {
		if _, err := NonNegative(bad); err == nil {
			t.Errorf("NonNegative(%v): no error", bad)
		}
	}
}
