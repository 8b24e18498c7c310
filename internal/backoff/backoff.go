// Package backoff computes Celery's exponential retry backoff
// (celery.utils.time.get_exponential_backoff_interval), as used by
// autoretry_for with retry_backoff.
package backoff

// Interval returns the countdown in seconds before retry number
// retries+1: min(maximum, factor * 2**retries), then with fullJitter a
// uniformly random integer in [0, countdown] drawn by randn (randn(n)
// returns an integer in [0, n), like Python's random.randrange), and never
// negative. Like Celery's, the arithmetic is on integers (Celery passes
// int(retry_backoff) and int(retry_backoff_max)).
func Interval(factor, retries, maximum int, fullJitter bool, randn func(n int) int) int {
	countdown := maximum
	switch {
	case factor <= 0:
		countdown = 0
	case retries < 62 && factor <= maximum/(1<<retries):
		// factor * 2**retries fits under maximum (checked without overflow).
		countdown = factor << retries
	}
	if fullJitter && countdown >= 0 {
		countdown = randn(countdown + 1)
	}
	return max(0, countdown)
}
