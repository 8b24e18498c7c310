package ratelimit

import (
	"math"
	"testing"
	"time"
)

// Rates as celery.utils.time.rate returns them (checked with
// /usr/bin/python3, Celery 5.2.6).
func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
	}{
		{"10/s", 10}, {"100/m", 100.0 / 60}, {"1000/h", 1000.0 / 3600}, {"5", 5},
		{"0", 0}, {"2.5/s", 2.5}, {"", 0}, {" 20/s ", 20},
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"x", "10/d", "-1/s", "/s", "nan", "NaN/m"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}

func TestBucketReserve(t *testing.T) {
	b := NewBucket(20) // one task every 50 ms
	if b.Interval() != 50*time.Millisecond {
		t.Fatalf("interval %v", b.Interval())
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// A full bucket admits at once; the following reservations queue up
	// one interval apart, in call order.
	want := []time.Duration{0, 50, 100, 150}
	for i, w := range want {
		if got := b.Reserve(t0).Sub(t0); got != w*time.Millisecond {
			t.Errorf("reservation %d at +%v, want +%v", i, got, w*time.Millisecond)
		}
	}
	// Later than the last reservation + interval: the bucket has refilled
	// (capacity 1), so it admits at once but holds no extra token.
	t1 := t0.Add(time.Second)
	if got := b.Reserve(t1); !got.Equal(t1) {
		t.Errorf("idle bucket admitted at %v, want %v", got, t1)
	}
	if got := b.Reserve(t1); !got.Equal(t1.Add(50 * time.Millisecond)) {
		t.Errorf("second after idle at %v, want +50ms", got.Sub(t1))
	}
	// 200 tasks at 20/s take 199 intervals = 9.95 s from the first.
	b2 := NewBucket(20)
	var last time.Time
	for range 200 {
		last = b2.Reserve(t0)
	}
	if got := last.Sub(t0); got != 9950*time.Millisecond {
		t.Errorf("200th task at +%v, want +9.95s", got)
	}
}

// TestBucketTinyRate: a rate whose interval overflows time.Duration
// (here 1e-300/s from a remote rate_limit command) admits the first task
// and holds the next for the longest Duration; it used to wrap to a
// negative interval that admitted every task at once.
func TestBucketTinyRate(t *testing.T) {
	for _, spec := range []string{"1e-300", "1e-10/h"} {
		r, err := Parse(spec)
		if err != nil || r <= 0 {
			t.Fatalf("Parse(%q) = %v, %v", spec, r, err)
		}
		b := NewBucket(r)
		if b.Interval() != math.MaxInt64 {
			t.Errorf("%s: interval %v, want the longest Duration", spec, b.Interval())
		}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		if got := b.Reserve(t0); !got.Equal(t0) {
			t.Errorf("%s: first task at %v, want at once", spec, got)
		}
		if got := b.Reserve(t0); got.Sub(t0) < 290*365*24*time.Hour {
			t.Errorf("%s: second task at +%v, want centuries later", spec, got.Sub(t0))
		}
	}
	if iv := NewBucket(math.Inf(1)).Interval(); iv != 0 {
		t.Errorf("infinite rate: interval %v, want 0", iv)
	}
}

// FuzzParse: any rate string either fails with an error or gives a
// non-negative rate whose bucket spaces its tasks forward in time.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "10/s", "100/m", "1000/h", "0.5", "0", "inf", "nan", "1e-300", "1e308/s", " 3 / m ", "-1/s", "x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if math.IsNaN(r) || r < 0 {
			t.Fatalf("Parse(%q) = %v without an error", s, r)
		}
		if r == 0 {
			return
		}
		b := NewBucket(r)
		if b.Interval() < 0 {
			t.Fatalf("Parse(%q) = %v: negative interval %v", s, r, b.Interval())
		}
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		first, second := b.Reserve(t0), b.Reserve(t0)
		if !first.Equal(t0) || second.Before(first) {
			t.Fatalf("Parse(%q) = %v: reservations %v then %v", s, r, first, second)
		}
	})
}
