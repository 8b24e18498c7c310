package celerity

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestTokenPoolAcquireAtLeast: acquireAtLeast waits until need() tokens
// are free, takes all free tokens, and re-evaluates need on poke.
func TestTokenPoolAcquireAtLeast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tp := newTokenPool(8)
	if n := tp.acquire(ctx); n != 8 {
		t.Fatalf("acquire took %d, want all 8", n)
	}
	var need atomic.Int32
	need.Store(4)
	got := make(chan int, 1)
	go func() { got <- tp.acquireAtLeast(ctx, func() int { return int(need.Load()) }) }()
	tp.release(2)
	select {
	case n := <-got:
		t.Fatalf("took %d tokens while need was 4", n)
	case <-time.After(50 * time.Millisecond):
	}
	tp.release(1)
	select {
	case n := <-got:
		t.Fatalf("took %d tokens while need was 4", n)
	case <-time.After(50 * time.Millisecond):
	}
	need.Store(1)
	tp.poke()
	select {
	case n := <-got:
		if n != 3 {
			t.Fatalf("took %d tokens, want the 3 free", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a poke after need dropped did not wake the waiter")
	}
	cancel()
	if n := tp.acquireAtLeast(ctx, func() int { return 1 }); n != 0 {
		t.Fatalf("acquire after cancel returned %d, want 0", n)
	}
}
