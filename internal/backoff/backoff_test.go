package backoff

import "testing"

// The want values were computed with /usr/bin/python3 (Celery 5.2.6):
//
//	from celery.utils.time import get_exponential_backoff_interval as f
//	f(factor, retries, maximum, full_jitter=False)
func TestIntervalMatchesCelery(t *testing.T) {
	noRand := func(int) int { t.Fatal("randn called without jitter"); return 0 }
	for _, c := range []struct{ factor, retries, maximum, want int }{
		{1, 0, 600, 1},
		{1, 1, 600, 2},
		{1, 2, 600, 4},
		{1, 9, 600, 512},
		{1, 10, 600, 600},
		{3, 0, 600, 3},
		{3, 4, 600, 48},
		{3, 8, 600, 600},
		{5, 3, 30, 30},
		{2, 100, 600, 600},
		{0, 5, 600, 0},
		{1, 63, 1000, 1000},
		{7, 2, 28, 28},
		{7, 2, 27, 27},
	} {
		if got := Interval(c.factor, c.retries, c.maximum, false, noRand); got != c.want {
			t.Errorf("Interval(%d, %d, %d) = %d, want %d", c.factor, c.retries, c.maximum, got, c.want)
		}
	}
}

// With full jitter Celery draws random.randrange(countdown + 1): an
// integer in [0, countdown].
func TestIntervalJitterRange(t *testing.T) {
	for _, c := range []struct{ factor, retries, maximum, bound int }{
		{1, 0, 600, 1}, {1, 3, 600, 8}, {2, 20, 600, 600}, {0, 1, 600, 0},
	} {
		var asked int
		lo := Interval(c.factor, c.retries, c.maximum, true, func(n int) int { asked = n; return 0 })
		hi := Interval(c.factor, c.retries, c.maximum, true, func(n int) int { return n - 1 })
		if asked != c.bound+1 || lo != 0 || hi != c.bound {
			t.Errorf("%+v: randn(%d), range [%d, %d], want randn(%d), [0, %d]", c, asked, lo, hi, c.bound+1, c.bound)
		}
	}
}
