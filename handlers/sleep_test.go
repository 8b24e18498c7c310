package handlers

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/celerity-go/celerity"
)

// TestSleepDurationFollowsPython: what CPython 3.11's time.sleep does
// with each argument (checked with /usr/bin/python3 on Debian 12).
func TestSleepDurationFollowsPython(t *testing.T) {
	for _, c := range []struct {
		in      float64
		want    time.Duration
		errType string
		errMsg  string
	}{
		{0, 0, "", ""},
		{0.25, 250 * time.Millisecond, "", ""},
		{1e-10, 1, "", ""}, // rounded up to a nanosecond
		{9.2e9, 9_200_000_000 * time.Second, "", ""},
		{-1, 0, "ValueError", "sleep length must be non-negative"},
		{math.NaN(), 0, "ValueError", "Invalid value NaN (not a number)"},
		{9.3e9, 0, "OverflowError", "timestamp too large to convert to C _PyTime_t"},
		{1e300, 0, "OverflowError", "timestamp too large to convert to C _PyTime_t"},
		{-1e300, 0, "OverflowError", "timestamp too large to convert to C _PyTime_t"},
		{math.Inf(1), 0, "OverflowError", "timestamp too large to convert to C _PyTime_t"},
		{math.Inf(-1), 0, "OverflowError", "timestamp too large to convert to C _PyTime_t"},
	} {
		got, err := sleepDuration(c.in)
		if c.errType == "" {
			if err != nil || got != c.want {
				t.Errorf("sleepDuration(%v) = %v, %v; want %v", c.in, got, err, c.want)
			}
			continue
		}
		var pe *celerity.PyError
		if !errors.As(err, &pe) || pe.Type != c.errType || len(pe.Args) != 1 || pe.Args[0] != c.errMsg {
			t.Errorf("sleepDuration(%v) error %v; want %s(%q)", c.in, err, c.errType, c.errMsg)
		}
	}
}
