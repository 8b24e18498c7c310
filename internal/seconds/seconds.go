// Package seconds converts Celery's float seconds to time.Duration.
package seconds

import (
	"fmt"
	"math"
	"time"
)

// Duration converts non-negative seconds to a Duration. Anything beyond a
// Duration's range (about 292 years, +Inf and NaN included) is the
// longest Duration: a plain conversion would wrap to a negative value on
// amd64 and saturate elsewhere.
func Duration(s float64) time.Duration {
	if ns := s * float64(time.Second); ns < math.MaxInt64 {
		return time.Duration(ns)
	}
	return math.MaxInt64
}

// NonNegative is Duration for a setting that must be a non-negative
// number of seconds: NaN and negative values are an error.
func NonNegative(s float64) (time.Duration, error) {
	if math.IsNaN(s) || s < 0 {
		return 0, fmt.Errorf("want a non-negative number of seconds, got %v", s)
	}
	return Duration(s), nil
}
