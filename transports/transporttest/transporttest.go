// Package transporttest is the conformance suite every transport runs
// (the riverdrivertest pattern): the same behaviour is asserted against
// Redis, RabbitMQ and the in-memory transport.
package transporttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

// PriorityOrder says which priority a transport serves first.
type PriorityOrder int

const (
	// PriorityUnsupported skips the priority test.
	PriorityUnsupported PriorityOrder = iota
	// LowerFirst: a lower number is consumed first (kombu's Redis
	// transport, bucketed by priority_steps).
	LowerFirst
	// HigherFirst: a higher number is consumed first (AMQP with
	// x-max-priority).
	HigherFirst
)

// Options describe the transport-specific parts of the suite.
type Options struct {
	// Recover simulates broker-side recovery after a consumer vanished
	// without settling its deliveries (crash): afterwards those deliveries
	// must be consumable again, marked redelivered. For Redis: the
	// visibility sweep with a tiny timeout; for AMQP: nothing (closing the
	// channel requeues). nil skips the crash test.
	Recover func(t *testing.T, tr transports.Transport)
	// Priority is the expected priority order.
	Priority PriorityOrder
	// Timeout bounds every wait in the suite. Default 10 s.
	Timeout time.Duration
}

// Run runs the suite. newTransport is called one or more times per
// subtest; every transport it returns for the same t must share one
// broker namespace (a reconnect), and it should register its own cleanup
// with t.Cleanup. Queue names are unique per subtest.
func Run(t *testing.T, newTransport func(t *testing.T) transports.Transport, opts Options) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	s := &suite{newTransport: newTransport, opts: opts}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"RoundTrip", s.testRoundTrip},
		{"FIFO", s.testFIFO},
		{"FetchMaxBoundsBatch", s.testFetchMax},
		{"AckRemovesForGood", s.testAck},
		{"AckBatch", s.testAckBatch},
		{"RejectDrops", s.testRejectDrop},
		{"RejectRequeue", s.testRejectRequeue},
		{"RestoreRedelivers", s.testRestore},
		{"CrashRecovery", s.testCrashRecovery},
		{"Priority", s.testPriority},
		{"FairQueues", s.testFair},
		{"FetchHonoursContext", s.testContext},
		{"ClosedConsumer", s.testClosed},
		{"NamedExchange", s.testNamedExchange},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct {
	newTransport func(t *testing.T) transports.Transport
	opts         Options
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// QueueName returns a queue name unique to t.
func QueueName(t *testing.T, suffix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := nonName.ReplaceAllString(t.Name(), "_")
	return fmt.Sprintf("tt.%s.%s.%s", name, hex.EncodeToString(b[:]), suffix)
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	t.Cleanup(cancel)
	return ctx
}

func (s *suite) transport(t *testing.T) transports.Transport {
	tr := s.newTransport(t)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func (s *suite) declare(t *testing.T, tr transports.Transport, names ...string) {
	t.Helper()
	qs := make([]transports.Queue, len(names))
	for i, n := range names {
		qs[i] = transports.Queue{Name: n, Durable: true, MaxPriority: 10}
	}
	if err := tr.Declare(s.ctx(t), qs...); err != nil {
		t.Fatalf("Declare: %v", err)
	}
}

func (s *suite) consume(t *testing.T, tr transports.Transport, queues ...string) transports.Consumer {
	t.Helper()
	c, err := tr.Consume(s.ctx(t), queues, 100)
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// NewMessage builds a Celery-like message whose body identifies it.
func NewMessage(id string, priority int) *kombu.Message {
	return &kombu.Message{
		Body:            []byte(`[[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]` + "\n" + id),
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		Headers: map[string]any{
			"lang": "py", "task": "tt.add", "id": id, "root_id": id,
			"retries": int64(0), "eta": nil, "argsrepr": "(1, 2)",
			"timelimit": []any{nil, nil},
		},
		Properties: kombu.Properties{
			CorrelationID: id,
			ReplyTo:       "reply-" + id,
			DeliveryMode:  2,
			Priority:      priority,
		},
	}
}

func (s *suite) publish(t *testing.T, tr transports.Transport, queue string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := tr.Publish(s.ctx(t), "", queue, NewMessage(id, 0)); err != nil {
			t.Fatalf("Publish %s: %v", id, err)
		}
	}
}

func msgID(d *transports.Delivery) string {
	if d == nil || d.Message == nil {
		return "<nil>"
	}
	id, _ := d.Message.Headers["id"].(string)
	return id
}

// fetchN fetches until n deliveries arrived (max per call), failing on
// timeout.
func (s *suite) fetchN(t *testing.T, c transports.Consumer, n, max int) []*transports.Delivery {
	t.Helper()
	ctx := s.ctx(t)
	var out []*transports.Delivery
	for len(out) < n {
		ds, err := c.Fetch(ctx, max)
		if err != nil {
			t.Fatalf("Fetch after %d of %d deliveries: %v", len(out), n, err)
		}
		if len(ds) == 0 || len(ds) > max {
			t.Fatalf("Fetch(max=%d) returned %d deliveries", max, len(ds))
		}
		out = append(out, ds...)
	}
	if len(out) != n {
		t.Fatalf("got %d deliveries, want %d", len(out), n)
	}
	return out
}

// expectEmpty asserts that nothing is delivered within a short window.
func (s *suite) expectEmpty(t *testing.T, c transports.Consumer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	ds, err := c.Fetch(ctx, 10)
	if len(ds) > 0 {
		t.Fatalf("unexpected delivery %s (redelivered=%v)", msgID(ds[0]), ds[0].Redelivered)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch on empty queue: err = %v, want context.DeadlineExceeded", err)
	}
}

func ids(ds []*transports.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = msgID(d)
	}
	return out
}

func (s *suite) testRoundTrip(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	want := NewMessage("rt-1", 0)
	want.Headers["nested"] = map[string]any{"a": []any{"x", true, nil}, "b": "ü € \"q\""}
	want.Body = append(want.Body, 0, 0xff, '\n')
	if err := tr.Publish(s.ctx(t), "", q, want); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if want.Properties.DeliveryTag != "" || want.Properties.DeliveryInfo.RoutingKey != "" {
		t.Errorf("Publish modified the caller's message: %+v", want.Properties)
	}
	c := s.consume(t, tr, q)
	d := s.fetchN(t, c, 1, 10)[0]
	got := d.Message
	if got == nil {
		t.Fatal("delivery without message")
	}
	if string(got.Body) != string(want.Body) {
		t.Errorf("body = %q, want %q", got.Body, want.Body)
	}
	if got.ContentType != want.ContentType || got.ContentEncoding != want.ContentEncoding {
		t.Errorf("content type/encoding = %q/%q", got.ContentType, got.ContentEncoding)
	}
	for k, v := range want.Headers {
		if !sameValue(got.Headers[k], v) {
			t.Errorf("header %q = %#v, want %#v", k, got.Headers[k], v)
		}
	}
	if got.Properties.CorrelationID != "rt-1" || got.Properties.ReplyTo != "reply-rt-1" {
		t.Errorf("correlation_id/reply_to = %q/%q", got.Properties.CorrelationID, got.Properties.ReplyTo)
	}
	if got.Properties.DeliveryMode != 2 {
		t.Errorf("delivery_mode = %d, want 2", got.Properties.DeliveryMode)
	}
	if d.Queue != q {
		t.Errorf("Queue = %q, want %q", d.Queue, q)
	}
	if d.Tag == "" {
		t.Error("empty delivery tag")
	}
	if d.Redelivered {
		t.Error("first delivery marked redelivered")
	}
	if ri := got.Properties.DeliveryInfo; ri.RoutingKey != q || ri.Exchange != "" {
		t.Errorf("delivery_info = %+v, want exchange \"\" routing_key %q", ri, q)
	}
	if err := c.Ack(s.ctx(t), d); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

// sameValue compares decoded header values, treating all numbers alike.
func sameValue(a, b any) bool {
	na, aok := number(a)
	nb, bok := number(b)
	if aok || bok {
		return aok && bok && na == nb
	}
	switch bv := b.(type) {
	case []any:
		av, ok := a.([]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for i := range av {
			if !sameValue(av[i], bv[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		av, ok := a.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k := range bv {
			if !sameValue(av[k], bv[k]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func number(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint()), true
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	}
	return 0, false
}

func (s *suite) testFIFO(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("fifo-%02d", i))
	}
	s.publish(t, tr, q, want...)
	c := s.consume(t, tr, q)
	ds := s.fetchN(t, c, len(want), 7)
	if got := ids(ds); !reflect.DeepEqual(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	if err := c.Ack(s.ctx(t), ds...); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) testFetchMax(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	for i := range 10 {
		s.publish(t, tr, q, fmt.Sprintf("max-%d", i))
	}
	c := s.consume(t, tr, q)
	ctx := s.ctx(t)
	total := 0
	var all []*transports.Delivery
	for total < 10 {
		ds, err := c.Fetch(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) < 1 || len(ds) > 3 {
			t.Fatalf("Fetch(max=3) returned %d", len(ds))
		}
		total += len(ds)
		all = append(all, ds...)
	}
	if total != 10 {
		t.Fatalf("got %d deliveries, want 10", total)
	}
	one, err := func() ([]*transports.Delivery, error) {
		s.publish(t, tr, q, "max-a", "max-b")
		return c.Fetch(ctx, 1)
	}()
	if err != nil || len(one) != 1 {
		t.Fatalf("Fetch(max=1) = %d deliveries, %v", len(one), err)
	}
	all = append(all, one...)
	all = append(all, s.fetchN(t, c, 1, 1)...)
	if err := c.Ack(ctx, all...); err != nil {
		t.Fatal(err)
	}
	s.expectEmpty(t, c)
}

// reopen closes c and its transport, runs Recover and returns a consumer
// on a fresh transport (a reconnect).
func (s *suite) reopen(t *testing.T, tr transports.Transport, c transports.Consumer, q string) (transports.Transport, transports.Consumer) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Fatalf("Consumer.Close: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("Transport.Close: %v", err)
	}
	tr2 := s.transport(t)
	if s.opts.Recover != nil {
		s.opts.Recover(t, tr2)
	}
	return tr2, s.consume(t, tr2, q)
}

func (s *suite) testAck(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	s.publish(t, tr, q, "ack-1")
	c := s.consume(t, tr, q)
	d := s.fetchN(t, c, 1, 1)[0]
	if err := c.Ack(s.ctx(t), d); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	_, c2 := s.reopen(t, tr, c, q)
	s.expectEmpty(t, c2)
}

func (s *suite) testAckBatch(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	s.publish(t, tr, q, "b-1", "b-2", "b-3", "b-4", "b-5")
	c := s.consume(t, tr, q)
	ds := s.fetchN(t, c, 5, 5)
	if err := c.Ack(s.ctx(t), ds...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	_, c2 := s.reopen(t, tr, c, q)
	s.expectEmpty(t, c2)
}

func (s *suite) testRejectDrop(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	s.publish(t, tr, q, "rej-1")
	c := s.consume(t, tr, q)
	d := s.fetchN(t, c, 1, 1)[0]
	if err := c.Reject(s.ctx(t), d, false); err != nil {
		t.Fatalf("Reject: %v", err)
	}
	s.expectEmpty(t, c)
	_, c2 := s.reopen(t, tr, c, q)
	s.expectEmpty(t, c2)
}

func (s *suite) testRejectRequeue(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	s.publish(t, tr, q, "rq-1", "rq-2")
	c := s.consume(t, tr, q)
	d := s.fetchN(t, c, 1, 1)[0]
	if msgID(d) != "rq-1" {
		t.Fatalf("first delivery %s, want rq-1", msgID(d))
	}
	if err := c.Reject(s.ctx(t), d, true); err != nil {
		t.Fatalf("Reject(requeue): %v", err)
	}
	ds := s.fetchN(t, c, 2, 1)
	var again *transports.Delivery
	for _, x := range ds {
		if msgID(x) == "rq-1" {
			again = x
		}
	}
	if again == nil {
		t.Fatalf("requeued message not redelivered: got %v", ids(ds))
	}
	if !again.Redelivered {
		t.Error("requeued message not marked redelivered")
	}
	if err := c.Ack(s.ctx(t), ds...); err != nil {
		t.Fatal(err)
	}
	s.expectEmpty(t, c)
}

func (s *suite) testRestore(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	s.publish(t, tr, q, "rs-1", "rs-2", "rs-3", "rs-4")
	c := s.consume(t, tr, q)
	ds := s.fetchN(t, c, 2, 1)
	if got := ids(ds); !reflect.DeepEqual(got, []string{"rs-1", "rs-2"}) {
		t.Fatalf("first deliveries %v", got)
	}
	if err := c.Restore(s.ctx(t), ds...); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	again := s.fetchN(t, c, 4, 1)
	if got := ids(again); !reflect.DeepEqual(got, []string{"rs-1", "rs-2", "rs-3", "rs-4"}) {
		t.Fatalf("after restore: order %v, want rs-1 rs-2 rs-3 rs-4", got)
	}
	for i, d := range again {
		if want := i < 2; d.Redelivered != want {
			t.Errorf("%s: Redelivered = %v, want %v", msgID(d), d.Redelivered, want)
		}
	}
	if err := c.Ack(s.ctx(t), again...); err != nil {
		t.Fatal(err)
	}
	s.expectEmpty(t, c)
}

func (s *suite) testCrashRecovery(t *testing.T) {
	if s.opts.Recover == nil {
		t.Skip("transport has no Recover hook")
	}
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	s.publish(t, tr, q, "cr-1", "cr-2")
	c := s.consume(t, tr, q)
	ds := s.fetchN(t, c, 2, 2)
	_ = ds // never settled: the "process" dies here
	_, c2 := s.reopen(t, tr, c, q)
	again := s.fetchN(t, c2, 2, 2)
	got := ids(again)
	if !(reflect.DeepEqual(got, []string{"cr-1", "cr-2"}) || reflect.DeepEqual(got, []string{"cr-2", "cr-1"})) {
		t.Fatalf("recovered %v, want cr-1 and cr-2", got)
	}
	for _, d := range again {
		if !d.Redelivered {
			t.Errorf("%s not marked redelivered", msgID(d))
		}
	}
	if err := c2.Ack(s.ctx(t), again...); err != nil {
		t.Fatal(err)
	}
	s.expectEmpty(t, c2)
}

func (s *suite) testPriority(t *testing.T) {
	if s.opts.Priority == PriorityUnsupported {
		t.Skip("transport has no priorities")
	}
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	for _, p := range []int{5, 0, 9} {
		if err := tr.Publish(s.ctx(t), "", q, NewMessage(fmt.Sprintf("p%d", p), p)); err != nil {
			t.Fatal(err)
		}
	}
	c := s.consume(t, tr, q)
	ds := s.fetchN(t, c, 3, 1)
	want := []string{"p0", "p5", "p9"}
	if s.opts.Priority == HigherFirst {
		want = []string{"p9", "p5", "p0"}
	}
	if got := ids(ds); !reflect.DeepEqual(got, want) {
		t.Fatalf("priority order %v, want %v", got, want)
	}
	for _, d := range ds {
		if p := d.Message.Properties.Priority; fmt.Sprintf("p%d", p) != msgID(d) {
			t.Errorf("%s: priority property = %d", msgID(d), p)
		}
	}
	if err := c.Ack(s.ctx(t), ds...); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) testFair(t *testing.T) {
	tr := s.transport(t)
	q1, q2 := QueueName(t, "a"), QueueName(t, "b")
	s.declare(t, tr, q1, q2)
	for i := range 10 {
		s.publish(t, tr, q1, fmt.Sprintf("a-%d", i))
		s.publish(t, tr, q2, fmt.Sprintf("b-%d", i))
	}
	c := s.consume(t, tr, q1, q2)
	ds := s.fetchN(t, c, 10, 1)
	count := map[string]int{}
	for _, d := range ds {
		count[d.Queue]++
		if !strings.HasPrefix(msgID(d), map[string]string{q1: "a-", q2: "b-"}[d.Queue]) {
			t.Errorf("delivery %s reported queue %s", msgID(d), d.Queue)
		}
	}
	if count[q1] < 3 || count[q2] < 3 {
		t.Fatalf("unfair: first 10 deliveries per queue = %v", count)
	}
	rest := s.fetchN(t, c, 10, 4)
	if err := c.Ack(s.ctx(t), append(ds, rest...)...); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) testContext(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	c := s.consume(t, tr, q)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ds, err := c.Fetch(ctx, 1); !errors.Is(err, context.Canceled) || len(ds) != 0 {
		t.Fatalf("Fetch(canceled ctx) = %d deliveries, %v", len(ds), err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Fetch(ctx, 1)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Fetch after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(s.opts.Timeout):
		t.Fatal("Fetch did not return after ctx was canceled")
	}

	// A message published after a canceled Fetch must still be delivered.
	s.publish(t, tr, q, "ctx-1")
	d := s.fetchN(t, c, 1, 1)[0]
	if msgID(d) != "ctx-1" {
		t.Fatalf("got %s, want ctx-1", msgID(d))
	}
	if err := c.Ack(s.ctx(t), d); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) testClosed(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	s.declare(t, tr, q)
	c := s.consume(t, tr, q)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.Fetch(s.ctx(t), 1); !errors.Is(err, transports.ErrClosed) {
		t.Fatalf("Fetch after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Closing the consumer loses nothing that was never fetched.
	s.publish(t, tr, q, "cl-1")
	c2 := s.consume(t, tr, q)
	d := s.fetchN(t, c2, 1, 1)[0]
	if msgID(d) != "cl-1" {
		t.Fatalf("got %s", msgID(d))
	}
	if err := c2.Ack(s.ctx(t), d); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) testNamedExchange(t *testing.T) {
	tr := s.transport(t)
	q := QueueName(t, "q")
	ex := QueueName(t, "ex")
	if err := tr.Declare(s.ctx(t), transports.Queue{Name: q, Exchange: ex, ExchangeType: "direct", RoutingKey: "rk.1", Durable: true}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(s.ctx(t), ex, "rk.1", NewMessage("ex-1", 0)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(s.ctx(t), ex, "rk.other", NewMessage("ex-2", 0)); err != nil {
		t.Fatal(err)
	}
	c := s.consume(t, tr, q)
	d := s.fetchN(t, c, 1, 10)[0]
	if msgID(d) != "ex-1" {
		t.Fatalf("got %s, want ex-1", msgID(d))
	}
	if di := d.Message.Properties.DeliveryInfo; di.Exchange != ex || di.RoutingKey != "rk.1" {
		t.Errorf("delivery_info = %+v", di)
	}
	if err := c.Ack(s.ctx(t), d); err != nil {
		t.Fatal(err)
	}
	s.expectEmpty(t, c)
}
