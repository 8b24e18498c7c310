package redistransport

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

// TestConcurrentFetch runs FetchConcurrency+2 fetchers at once over two
// queues, starting while the queues are empty (so one of them waits in
// BRPOP) and publishing while they run: every message must be delivered
// exactly once and be recorded in unacked (once its record is over) until
// its ack.
func TestConcurrentFetch(t *testing.T) {
	tr := newTestTransport(t, Options{PollTimeout: time.Second})
	ctx := ctxT(t)
	p := tr.ks.prefix
	queues := []string{"cf_a", "cf_b"}
	for _, q := range queues {
		if err := tr.Declare(ctx, transports.Queue{Name: q}); err != nil {
			t.Fatal(err)
		}
	}
	c := consumeT(t, tr, queues...)
	const total = 600
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, 16)
	for range c.FetchConcurrency() + 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fctx.Err() == nil {
				ds, err := c.Fetch(fctx, 7)
				if err != nil {
					if fctx.Err() == nil {
						errs <- err
					}
					return
				}
				// A BRPOP delivery may be handed out before its record
				// lands; it is in unacked once the record is over.
				if err := c.waitRecorded(ctx, ds...); err != nil {
					errs <- err
				}
				for _, d := range ds {
					n, err := tr.client.HExists(ctx, p+"unacked", d.Tag).Result()
					if err != nil || !n {
						errs <- fmt.Errorf("%s not in unacked: %v", d.Tag, err)
					}
				}
				if err := c.Ack(ctx, ds...); err != nil {
					errs <- err
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.Tag]++
				}
				mu.Unlock()
			}
		}()
	}
	m := benchMessage()
	for i := range total {
		mm := *m
		mm.Properties.DeliveryTag = fmt.Sprintf("cf-%04d", i)
		q := queues[i%2]
		mm.Properties.DeliveryInfo = kombu.DeliveryInfo{RoutingKey: q}
		mm.Properties.BodyEncoding = "base64"
		data, err := kombu.AppendEnvelope(nil, &mm)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.client.LPush(ctx, p+q, data).Err(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == total || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != total {
		t.Fatalf("delivered %d distinct messages, want %d", len(seen), total)
	}
	for tag, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", tag, n)
		}
	}
	if n, _ := tr.client.HLen(ctx, p+"unacked").Result(); n != 0 {
		t.Errorf("unacked holds %d entries after acking everything", n)
	}
}
