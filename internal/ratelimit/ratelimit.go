// Package ratelimit implements Celery's per-task rate limits: the rate
// strings of celery.utils.time.rate ("10/s", "100/m", "1000/h", a plain
// number meaning per second) and the token bucket with capacity 1 that the
// worker keeps per task name (kombu.utils.limits.TokenBucket).
package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/celerity-go/celerity/internal/seconds"
)

// Parse reads a Celery rate string and returns the number of tasks allowed
// per second. "" and a zero rate mean no limit (0).
func Parse(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	per := 1.0
	if ok {
		switch strings.TrimSpace(unit) {
		case "s":
			per = 1
		case "m":
			per = 60
		case "h":
			per = 3600
		default:
			return 0, fmt.Errorf("ratelimit: unknown unit in %q (want s, m or h)", s)
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n < 0 || math.IsNaN(n) {
		return 0, fmt.Errorf("ratelimit: bad rate %q", s)
	}
	return n / per, nil
}

// Bucket is a token bucket holding at most one token that refills at a
// fixed rate, as Celery's worker uses per task: tasks are admitted one
// interval apart, and an idle bucket admits the next task at once.
// Instead of polling, Reserve hands out the instant each task may run, so
// a caller can park the task in a timer. It is safe for concurrent use.
type Bucket struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time // when the bucket next holds a token
}

// NewBucket returns a bucket admitting perSecond tasks per second;
// perSecond must be positive. A rate so low that its interval exceeds
// what a time.Duration holds (about 292 years) gets the longest one: the
// bucket admits its first task and holds the rest, as Celery's does. An
// infinite rate admits everything at once.
func NewBucket(perSecond float64) *Bucket {
	return &Bucket{interval: seconds.Duration(1 / perSecond)}
}

// Interval is the spacing between admitted tasks.
func (b *Bucket) Interval() time.Duration { return b.interval }

// Reserve takes the next token and returns when it is available: now when
// the bucket is full, else the instant the token will have been refilled.
// Reservations are served in call order.
func (b *Bucket) Reserve(now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	at := b.next
	if at.Before(now) {
		at = now
	}
	b.next = at.Add(b.interval)
	return at
}
