package redistransport

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/protocolv2"
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
	tr := newTestTransport(b, Options{})
	m := benchMessage()
	c, err := tr.ConsumeQueues([]string{"bench_fetch"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	b.StopTimer()
	fillQueue(b, tr, "bench_fetch", b.N, func(int) string {
		mm := *m
		mm.Properties.DeliveryTag = newUUID4()
		mm.Properties.DeliveryInfo = kombu.DeliveryInfo{RoutingKey: "bench_fetch"}
		mm.Properties.BodyEncoding = "base64"
		data, _ := kombu.AppendEnvelope(nil, &mm)
		return string(data)
	})
	b.StartTimer()
	drainFetchAck(b, c, b.N, 64)
}

// fillQueue LPUSHes n envelopes, envelope(i) for i in [0, n), onto
// queue's step-0 list in pipelined chunks.
func fillQueue(b *testing.B, tr *Transport, queue string, n int, envelope func(i int) string) {
	b.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += 1000 {
		pipe := tr.client.Pipeline()
		for i := start; i < min(start+1000, n); i++ {
			pipe.LPush(ctx, tr.QueueKey(queue, 0), envelope(i))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// drainFetchAck fetches n messages batch at a time, one fetch after
// another, acknowledging each batch with AckAsync so that the next pop
// carries its acks (the worker's path under load).
func drainFetchAck(b *testing.B, c *Consumer, n, batch int) {
	b.Helper()
	ctx := context.Background()
	for done := 0; done < n; {
		ds, err := c.Fetch(ctx, min(batch, n-done))
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) == 0 {
			b.Fatalf("fetched nothing after %d of %d", done, n)
		}
		c.AckAsync(ds...)
		done += len(ds)
	}
}

// celeryAddEnvelope is message i of a tasks.add batch as Celery 5.2's
// send_task publishes it on Redis (protocol 2 headers, JSON body, base64
// body encoding, a fresh delivery tag): about 1 KB, like the load tool's.
func celeryAddEnvelope(tb testing.TB, queue string, i int) string {
	tb.Helper()
	t := &protocolv2.Task{
		ID: protocolv2.NewID(), Name: "tasks.add",
		Args:   []any{int64(i), int64(i + 1)},
		Kwargs: map[string]any{},
		Origin: "gen4242@bench",
	}
	m, err := protocolv2.Encode(t, protocolv2.EncodeOptions{ReplyTo: protocolv2.NewID(), RoutingKey: queue})
	if err != nil {
		tb.Fatal(err)
	}
	m.Properties.DeliveryInfo = kombu.DeliveryInfo{RoutingKey: queue}
	m.Properties.BodyEncoding = "base64"
	data, err := kombu.AppendEnvelope(nil, m)
	if err != nil {
		tb.Fatal(err)
	}
	return string(data)
}

// scriptUsec returns the calls and microseconds Redis has spent in EVAL
// and EVALSHA since it started (INFO commandstats; the usec of a script
// include the commands it calls).
func scriptUsec(tb testing.TB, c redis.UniversalClient) (calls, usec int64) {
	tb.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			rest, ok = strings.CutPrefix(strings.TrimSpace(line), "cmdstat_eval:")
		}
		if !ok {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				calls += n
			case "usec":
				usec += n
			}
		}
	}
	return calls, usec
}

// BenchmarkPopRedisTime measures what the worker's Redis fetch costs the
// Redis server itself: b.N Celery-shaped tasks.add envelopes are fetched
// batch at a time, one fetch after another, each pop carrying the
// previous batch's acks, as the worker does under load. Batch 4 is a pop
// at the default window (8 reserved, two pops in flight). redis-µs/pop
// and redis-µs/msg are the server's time in the pop script, from INFO
// commandstats: unlike tasks/s they hardly move with the other load on a
// shared machine, so they tell whether a change to the script helps.
// Run it alone: another client's scripts on the same server would count.
func BenchmarkPopRedisTime(b *testing.B) {
	for _, batch := range []int{4, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			tr := newTestTransport(b, Options{})
			const queue = "bench_pop"
			c, err := tr.ConsumeQueues([]string{queue})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.StopTimer()
			fillQueue(b, tr, queue, b.N, func(i int) string { return celeryAddEnvelope(b, queue, i) })
			calls0, usec0 := scriptUsec(b, tr.client)
			b.ReportAllocs()
			b.StartTimer()
			drainFetchAck(b, c, b.N, batch)
			b.StopTimer()
			calls, usec := scriptUsec(b, tr.client)
			calls, usec = calls-calls0, usec-usec0
			if calls == 0 {
				b.Fatal("INFO commandstats counted no pop script call")
			}
			b.ReportMetric(float64(usec)/float64(calls), "redis-µs/pop")
			b.ReportMetric(float64(usec)/float64(b.N), "redis-µs/msg")
		})
	}
}
