package redistransport

import (
	"testing"
	"time"
)

func TestCeilSeconds(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(1700000000, 0), 1700000000},
		{time.Unix(1700000000, 1), 1700000001},
		{time.Unix(1700000000, 999_999_999), 1700000001},
		{time.Unix(1700000000, 500_000_000).In(time.FixedZone("x", 3600)), 1700000001},
	} {
		if got := ceilSeconds(tc.t); got != tc.want {
			t.Errorf("ceilSeconds(%v) = %d, want %d", tc.t, got, tc.want)
		}
	}
}
