package events

import "sync"

// Clock is a Lamport clock, kombu's LamportClock: Forward before sending,
// Adjust on receipt. Celery shares one per worker between the pidbox node
// (request and reply "clock" headers, the clock/stats commands) and the
// event dispatcher (the events' "clock" field). Safe for concurrent use;
// the zero value starts at 0.
type Clock struct {
	mu    sync.Mutex
	value int64
}

// Forward increments the clock and returns the new value.
func (c *Clock) Forward() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.value++
	return c.value
}

// Adjust merges a received clock value: max(local, other) + 1.
func (c *Clock) Adjust(other int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.value = max(c.value, other) + 1
	return c.value
}

// Value returns the current value without changing it.
func (c *Clock) Value() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value
}
