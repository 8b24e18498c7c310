package celerity

import (
	"context"
	"sync"

	"github.com/celerity-go/celerity/protocolv2"
)

// gate is a handler that blocks each task until opened, recording how many
// ran at once.
type gate struct {
	mu       sync.Mutex
	running  int
	peak     int
	open     chan struct{}
	finished int
}

func newGate() *gate { return &gate{open: make(chan struct{}, 1024)} }

func (g *gate) handler(context.Context, *Request) (any, error) {
	g.mu.Lock()
	g.running++
	g.peak = max(g.peak, g.running)
	g.mu.Unlock()
	<-g.open
	g.mu.Lock()
	g.running--
	g.finished++
	g.mu.Unlock()
	return "done", nil
}

func (g *gate) state() (running, peak, finished int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running, g.peak, g.finished
}

func (g *gate) resetPeak() {
	g.mu.Lock()
	g.peak = g.running
	g.mu.Unlock()
}

// release lets n waiting (or future) tasks finish.
func (g *gate) release(n int) {
	for range n {
		g.open <- struct{}{}
	}
}

func (h *harness) sendN(name string, n int) []string {
	ids := make([]string, 0, n)
	for range n {
		task := &protocolv2.Task{Name: name}
		h.send(task, protocolv2.EncodeOptions{})
		ids = append(ids, task.ID)
	}
	return ids
}
