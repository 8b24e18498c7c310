package amqptransport

import (
	"context"
	"testing"
	"time"

	"github.com/celerity-go/celerity/transports"
)

func benchQueue(b *testing.B) (*Transport, string) {
	url := rabbitURL(b)
	tr := newTestTransport(b, url, Options{})
	name := uniq(b)
	deleteAtCleanup(b, url, []string{name}, []string{name})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Declare(ctx, transports.Queue{Name: name, Durable: true}); err != nil {
		b.Fatal(err)
	}
	return tr, name
}

// BenchmarkPublishConfirm publishes a task message and waits for its
// confirm (one at a time, then with 16 concurrent publishers).
func BenchmarkPublishConfirm(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		tr, name := benchQueue(b)
		m := taskMessage("bench", 0)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := tr.Publish(ctx, "", name, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		tr, name := benchQueue(b)
		m := taskMessage("bench", 0)
		ctx := context.Background()
		b.ReportAllocs()
		b.SetParallelism(16)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := tr.Publish(ctx, "", name, m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkFetchAck measures Fetch + Ack of pre-published messages in
// batches of up to 64 (prefetch 256), reported per message.
func BenchmarkFetchAck(b *testing.B) {
	tr, name := benchQueue(b)
	ctx := context.Background()
	m := taskMessage("bench", 0)
	// Publish the backlog concurrently, outside the timer.
	const workers = 32
	errs := make(chan error, workers)
	n := b.N
	for w := range workers {
		go func() {
			var err error
			for i := w; i < n && err == nil; i += workers {
				err = tr.Publish(ctx, "", name, m)
			}
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	c, err := tr.Consume(ctx, []string{name}, 256)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < n; {
		ds, err := c.Fetch(ctx, min(64, n-done))
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Ack(ctx, ds...); err != nil {
			b.Fatal(err)
		}
		done += len(ds)
	}
}
