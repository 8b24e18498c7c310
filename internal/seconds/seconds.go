// Package seconds converts Celery's float seconds to time.Duration.
package seconds

import (
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
