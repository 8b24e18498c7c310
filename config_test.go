package celerity

import (
	"slices"
	"testing"

	"github.com/celerity-go/celerity/transports"
)

// worker_direct adds the node's own queue once, declared as Celery's
// worker_direct(hostname) declares it, without touching the caller's
// slices.
func TestWorkerDirectConfig(t *testing.T) {
	queues := make([]string, 1, 4)
	queues[0] = "q"
	c := Config{Hostname: "w1@host", Queues: queues, WorkerDirect: true}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if err := c.setDefaults(); err != nil { // twice: still one direct queue
		t.Fatal(err)
	}
	if !slices.Equal(c.Queues, []string{"q", "w1@host.dq2"}) {
		t.Errorf("queues %v", c.Queues)
	}
	if queues[:2][1] != "" {
		t.Errorf("the caller's slice was written: %v", queues[:2])
	}
	want := []transports.Queue{
		{Name: "q", Exchange: "q", ExchangeType: "direct", RoutingKey: "q", Durable: true},
		{Name: "w1@host.dq2", Exchange: "C.dq2", ExchangeType: "direct", RoutingKey: "w1@host", Durable: true},
	}
	if got := c.declarations(); !slices.EqualFunc(got, want, func(a, b transports.Queue) bool {
		return a.Name == b.Name && a.Exchange == b.Exchange && a.ExchangeType == b.ExchangeType &&
			a.RoutingKey == b.RoutingKey && a.Durable == b.Durable
	}) {
		t.Errorf("declarations %+v", got)
	}
}
