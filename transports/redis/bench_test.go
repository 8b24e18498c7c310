package redistransport

import (
	"context"
	"testing"

	"github.com/celerity-go/celerity/kombu"
)

func benchMessage() *kombu.Message {
	return &kombu.Message{
		Body:            []byte(`[[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`),
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		Headers: map[string]any{
			"lang": "py", "task": "wiretasks.add", "id": "aaaaaaaa-0000-4000-8000-000000000001",
			"retries": int64(0), "root_id": "aaaaaaaa-0000-4000-8000-000000000001", "argsrepr": "(2, 3)",
		},
		Properties: kombu.Properties{CorrelationID: "aaaaaaaa-0000-4000-8000-000000000001", DeliveryMode: 2},
	}
}

func BenchmarkPublish(b *testing.B) {
	tr := newTestTransport(b, Options{})
	ctx := context.Background()
	m := benchMessage()
	b.ReportAllocs()
	for b.Loop() {
		if err := tr.Publish(ctx, "", "bench_pub", m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchAck measures Fetch(64) + AckAsync per batch (the
// worker's path: each pop carries the previous batch's acks); the
// reported ns/op is per message.
func BenchmarkFetchAck(b *testing.B) {
	const batch = 64
	tr := newTestTransport(b, Options{})
	ctx := context.Background()
	m := benchMessage()
	c, err := tr.ConsumeQueues([]string{"bench_fetch"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fill := func(n int) {
		pipe := tr.client.Pipeline()
		for range n {
			mm := *m
			mm.Properties.DeliveryTag = newUUID4()
			mm.Properties.DeliveryInfo = kombu.DeliveryInfo{RoutingKey: "bench_fetch"}
			mm.Properties.BodyEncoding = "base64"
			data, _ := kombu.AppendEnvelope(nil, &mm)
			pipe.LPush(ctx, tr.QueueKey("bench_fetch", 0), data)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.StopTimer()
	fill(b.N)
	b.StartTimer()
	for done := 0; done < b.N; {
		ds, err := c.Fetch(ctx, min(batch, b.N-done))
		if err != nil {
			b.Fatal(err)
		}
		c.AckAsync(ds...)
		done += len(ds)
	}
}
