package redistransport

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func readCapture(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/captures/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func consumeT(t *testing.T, tr *Transport, queues ...string) *Consumer {
	t.Helper()
	c, err := tr.ConsumeQueues(queues)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestUnackedLayoutMatchesKombu replays the captured kombu 5.2 crash
// state: the unacked hash value written for the captured envelope must be
// byte-identical to kombu's, and the visibility sweep must produce the
// captured restored payload (into the priority sub-list, as kombu 5.4+).
func TestUnackedLayoutMatchesKombu(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		name := map[bool]string{false: "script", true: "brpop"}[blocking]
		t.Run(name, func(t *testing.T) {
			tr := newTestTransport(t, Options{})
			ctx := ctxT(t)
			lines := readCapture(t, "redis-5.2-unacked-state.txt")
			tag, wantValue := lines[1], lines[2]
			var entry []json.RawMessage
			if err := json.Unmarshal([]byte(wantValue), &entry); err != nil {
				t.Fatal(err)
			}
			envelope := string(entry[0])
			p := tr.ks.prefix

			if err := tr.Declare(ctx, transports.Queue{Name: "wire_vis"}); err != nil {
				t.Fatal(err)
			}
			members, err := tr.client.SMembers(ctx, p+"_kombu.binding.wire_vis").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(members) != 1 || members[0] != "wire_vis\x06\x16\x06\x16wire_vis" {
				t.Fatalf("binding members = %q", members)
			}

			c := consumeT(t, tr, "wire_vis")
			// kombu put priority 4 into the step-3 sub-list.
			listKey := p + "wire_vis\x06\x163"
			if got := tr.QueueKey("wire_vis", 4); got != listKey {
				t.Fatalf("QueueKey = %q, want %q", got, listKey)
			}
			before := float64(time.Now().UnixNano()) / 1e9
			var ds []*transports.Delivery
			if blocking {
				done := make(chan struct{})
				go func() {
					defer close(done)
					ds, err = c.Fetch(ctx, 10)
				}()
				// Wait until the consumer is blocked in BRPOP, then push.
				// Once a BRPOP started, the non-blocking pop has run and
				// found nothing, so the push below is taken by BRPOP.
				waitFor(t, func() bool { return c.brpops.Load() > 0 })
				if err := tr.client.LPush(ctx, listKey, envelope).Err(); err != nil {
					t.Fatal(err)
				}
				<-done
			} else {
				if err := tr.client.LPush(ctx, listKey, envelope).Err(); err != nil {
					t.Fatal(err)
				}
				ds, err = c.Fetch(ctx, 10)
			}
			after := float64(time.Now().UnixNano()) / 1e9
			if err != nil || len(ds) != 1 {
				t.Fatalf("Fetch = %d, %v", len(ds), err)
			}
			d := ds[0]
			if d.Tag != tag || d.Queue != "wire_vis" || string(d.Raw) != envelope || d.Redelivered {
				t.Errorf("delivery tag=%q queue=%q redelivered=%v raw=%q", d.Tag, d.Queue, d.Redelivered, d.Raw)
			}
			if d.Message.Properties.Priority != 4 || string(d.Message.Body) != `{"hello": "world"}` {
				t.Errorf("message = %+v body %q", d.Message.Properties, d.Message.Body)
			}
			if blocking {
				// A message BRPOP popped is handed out while its record
				// is on the way (recordBRPOPed).
				waitFor(t, func() bool {
					n, err := tr.client.Exists(ctx, p+"unacked").Result()
					return err == nil && n == 1
				})
			}
			got, err := tr.client.HGet(ctx, p+"unacked", tag).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got != wantValue {
				t.Errorf("unacked value\n got %s\nwant %s", got, wantValue)
			}
			score, err := tr.client.ZScore(ctx, p+"unacked_index", tag).Result()
			if err != nil {
				t.Fatal(err)
			}
			// A whole second, rounded up (see nowArg).
			if score != math.Trunc(score) || score < math.Ceil(before) || score > math.Ceil(after) {
				t.Errorf("unacked_index score %f: want the whole second after the fetch, within [%f, %f]", score, math.Ceil(before), math.Ceil(after))
			}

			// Simulated crash: a sweep with a tiny visibility timeout.
			sweeper := newTestTransport(t, Options{VisibilityTimeout: time.Nanosecond})
			if n := sweepUntilRestored(t, sweeper); n != 1 {
				t.Fatalf("restored %d", n)
			}
			restored := readCapture(t, "redis-5.2-restored-after-visibility-timeout.txt")[1]
			items, err := tr.client.LRange(ctx, listKey, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 1 || items[0] != restored {
				t.Errorf("restored list %q\nwant %q", items, restored)
			}
			if n, _ := tr.client.HLen(ctx, p+"unacked").Result(); n != 0 {
				t.Errorf("unacked has %d entries after restore", n)
			}
			if n, _ := tr.client.ZCard(ctx, p+"unacked_index").Result(); n != 0 {
				t.Errorf("unacked_index has %d entries after restore", n)
			}
			if n, _ := tr.client.Exists(ctx, p+"unacked_mutex").Result(); n != 0 {
				t.Error("unacked_mutex not released")
			}
			// The restored message is delivered as redelivered.
			ds, err = c.Fetch(ctx, 1)
			if err != nil || len(ds) != 1 || !ds[0].Redelivered || ds[0].Tag != tag {
				t.Fatalf("after restore: %v %v", ds, err)
			}
			if err := c.Ack(ctx, ds...); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// sweepUntilRestored runs sweeper's visibility sweep until it restores
// something (an entry's score is the whole second after its fetch, so even
// a 1 ns timeout may need a second) and returns how many it restored.
func sweepUntilRestored(t *testing.T, sweeper *Transport) int {
	t.Helper()
	ctx := ctxT(t)
	n := 0
	waitFor(t, func() bool {
		k, err := sweeper.RestoreVisible(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += k
		return n > 0
	})
	return n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var uuid4RE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestPublishLayout(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	p := tr.ks.prefix
	q := "layout_q"
	if err := tr.Declare(ctx, transports.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	prios := []int{0, 1, 3, 5, 9}
	for _, pri := range prios {
		m := &kombu.Message{Body: []byte(`[[2, 3], {}, {}]`), ContentType: "application/json", ContentEncoding: "utf-8",
			Headers: map[string]any{"task": "wiretasks.add"}, Properties: kombu.Properties{Priority: pri, DeliveryMode: 2}}
		if err := tr.Publish(ctx, "", q, m); err != nil {
			t.Fatal(err)
		}
	}
	// Captured with kombu: 0,1 -> q; 3,5 -> q\x06\x163; 9 -> q\x06\x169.
	wantLen := map[string]int64{q: 2, q + "\x06\x163": 2, q + "\x06\x166": 0, q + "\x06\x169": 1}
	for k, want := range wantLen {
		if n, err := tr.client.LLen(ctx, p+k).Result(); err != nil || n != want {
			t.Errorf("LLEN %q = %d (%v), want %d", k, n, err, want)
		}
		if n, _ := tr.client.Exists(ctx, k).Result(); n != 0 {
			t.Errorf("unprefixed key %q exists", k)
		}
	}
	raw, err := tr.client.LIndex(ctx, p+q, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Body       string         `json:"body"`
		Headers    map[string]any `json:"headers"`
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal([]byte(raw), &env); err != nil {
		t.Fatal(err)
	}
	if env.Body != "W1syLCAzXSwge30sIHt9XQ==" {
		t.Errorf("body = %q", env.Body)
	}
	props := env.Properties
	if tag, _ := props["delivery_tag"].(string); !uuid4RE.MatchString(tag) {
		t.Errorf("delivery_tag = %v", props["delivery_tag"])
	}
	if props["body_encoding"] != "base64" || props["priority"] != float64(0) || props["delivery_mode"] != float64(2) {
		t.Errorf("properties = %v", props)
	}
	di, _ := props["delivery_info"].(map[string]any)
	if di["exchange"] != "" || di["routing_key"] != q || len(di) != 2 {
		t.Errorf("delivery_info = %v", di)
	}
	// Step order of the BRPOP keys: all queues at 0, then at 3, 6, 9.
	c := consumeT(t, tr, "a", "b")
	want := []string{p + "a", p + "b", p + "a\x06\x163", p + "b\x06\x163", p + "a\x06\x166", p + "b\x06\x166", p + "a\x06\x169", p + "b\x06\x169"}
	if got := c.keys(0); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("BRPOP keys %q, want %q", got, want)
	}
	c.rotate("a")
	if got := c.keys(0); got[0] != p+"b" || got[1] != p+"a" {
		t.Errorf("after rotate: %q", got[:2])
	}
}

func TestGlobalKeyprefixLayout(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	p := tr.ks.prefix
	if err := tr.Declare(ctx, transports.Queue{Name: "wire_q"}); err != nil {
		t.Fatal(err)
	}
	m := &kombu.Message{Body: []byte(`{}`), ContentType: "application/json", ContentEncoding: "utf-8", Properties: kombu.Properties{Priority: 6}}
	if err := tr.Publish(ctx, "", "wire_q", m); err != nil {
		t.Fatal(err)
	}
	c := consumeT(t, tr, "wire_q")
	ds, err := c.Fetch(ctx, 1)
	if err != nil || len(ds) != 1 {
		t.Fatal(len(ds), err)
	}
	if ds[0].Queue != "wire_q" {
		t.Errorf("Queue = %q (prefix or priority suffix leaked)", ds[0].Queue)
	}
	keys, err := tr.client.Keys(ctx, escapeGlob(p)+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, k := range keys {
		got[strings.TrimPrefix(k, p)] = true
	}
	for _, k := range []string{"_kombu.binding.wire_q", "unacked", "unacked_index"} {
		if !got[k] {
			t.Errorf("missing prefixed key %q (have %v)", k, keys)
		}
	}
	// The binding member is not prefixed.
	if ok, _ := tr.client.SIsMember(ctx, p+"_kombu.binding.wire_q", "wire_q\x06\x16\x06\x16wire_q").Result(); !ok {
		t.Error("binding member missing or prefixed")
	}
	// Fanout channel: prefix + "/{db}." + exchange.
	if ch := tr.ks.fanoutChannel("celery.pidbox", ""); ch != p+"/0.celery.pidbox" {
		t.Errorf("fanout channel %q", ch)
	}
	if err := c.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	if n, _ := tr.client.HLen(ctx, p+"unacked").Result(); n != 0 {
		t.Errorf("unacked not empty after ack: %d", n)
	}
}

func TestRejectRequeueGoesToTail(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	q := "tail_q"
	for _, id := range []string{"A", "B", "C"} {
		m := &kombu.Message{Body: []byte(id), ContentType: "text/plain", Headers: map[string]any{"id": id}}
		if err := tr.Publish(ctx, "", q, m); err != nil {
			t.Fatal(err)
		}
	}
	c := consumeT(t, tr, q)
	ds, err := c.Fetch(ctx, 1)
	if err != nil || string(ds[0].Message.Body) != "A" {
		t.Fatal(ds, err)
	}
	if err := c.Reject(ctx, ds[0], true); err != nil {
		t.Fatal(err)
	}
	var order []string
	for len(order) < 3 {
		ds, err := c.Fetch(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			order = append(order, string(d.Message.Body))
			if string(d.Message.Body) == "A" && (!d.Redelivered || d.Message.Headers["redelivered"] != true) {
				t.Error("requeued message lacks redelivered flags")
			}
		}
		if err := c.Ack(ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(order, "") != "BCA" {
		t.Fatalf("order %v, want B C A", order)
	}
}

func TestTopicAndFanout(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	p := tr.ks.prefix
	if err := tr.Declare(ctx,
		transports.Queue{Name: "tq1", Exchange: "tex", ExchangeType: "topic", RoutingKey: "a.*"},
		transports.Queue{Name: "tq2", Exchange: "tex", ExchangeType: "topic", RoutingKey: "#.z"},
	); err != nil {
		t.Fatal(err)
	}
	members, _ := tr.client.SMembers(ctx, p+"_kombu.binding.tex").Result()
	wantMember := "a.*\x06\x16^a\\..*?[^\\.]$\x06\x16tq1"
	found := false
	for _, m := range members {
		found = found || m == wantMember
	}
	if !found {
		t.Errorf("topic binding members %q, want one %q", members, wantMember)
	}
	for _, rk := range []string{"a.b", "x.z", "a.z", "q.q"} {
		if err := tr.Publish(ctx, "tex", rk, &kombu.Message{Body: []byte(rk)}); err != nil {
			t.Fatal(err)
		}
	}
	for q, want := range map[string]int64{"tq1": 2, "tq2": 2} {
		if n, _ := tr.client.LLen(ctx, p+q).Result(); n != want {
			t.Errorf("LLEN %s = %d, want %d", q, n, want)
		}
	}

	// Fanout: PUBLISH on the prefixed "/{db}.<exchange>/<rk>" channel.
	if err := tr.Declare(ctx, transports.Queue{Exchange: "fex", ExchangeType: "fanout"}); err != nil {
		t.Fatal(err)
	}
	sub := tr.client.Subscribe(ctx, p+"/0.fex/worker.heartbeat")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.Publish(ctx, "fex", "worker.heartbeat", &kombu.Message{Body: []byte("hb"), ContentType: "application/json"}); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := kombu.DecodeEnvelope([]byte(msg.Payload))
	if err != nil || string(m.Body) != "hb" || m.Properties.DeliveryInfo.Exchange != "fex" {
		t.Fatalf("fanout payload %q: %v", msg.Payload, err)
	}
}

// deliverOne publishes one message to q and fetches it, leaving it in
// unacked; it returns the consumer.
func deliverOne(t *testing.T, tr *Transport, q string) *Consumer {
	t.Helper()
	ctx := ctxT(t)
	m := &kombu.Message{Body: []byte("x"), ContentType: "text/plain"}
	if err := tr.Publish(ctx, "", q, m); err != nil {
		t.Fatal(err)
	}
	c := consumeT(t, tr, q)
	if ds, err := c.Fetch(ctx, 1); err != nil || len(ds) != 1 {
		t.Fatal(ds, err)
	}
	return c
}

func TestSweepRespectsMutexAndTimeout(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	p := tr.ks.prefix
	deliverOne(t, tr, "sw_q")
	// Fresh entries are not restored with the default timeout.
	if n, err := tr.RestoreVisible(ctx); err != nil || n != 0 {
		t.Fatalf("RestoreVisible = %d, %v", n, err)
	}
	// Another party holds the mutex: the sweep skips.
	sweeper := newTestTransport(t, Options{VisibilityTimeout: time.Nanosecond})
	if err := tr.client.Set(ctx, p+"unacked_mutex", "someone-else", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := sweeper.RestoreVisible(ctx); err != nil || n != 0 {
		t.Fatalf("RestoreVisible with mutex held = %d, %v", n, err)
	}
	if v, _ := tr.client.Get(ctx, p+"unacked_mutex").Result(); v != "someone-else" {
		t.Fatalf("foreign mutex was released: %q", v)
	}
	tr.client.Del(ctx, p+"unacked_mutex")
	// The entry's score is the whole second after the fetch (nowArg), so
	// even a 1 ns timeout restores it only once that second has passed.
	if restored := sweepUntilRestored(t, sweeper); restored != 1 {
		t.Fatalf("RestoreVisible restored %d", restored)
	}
	if n, _ := tr.client.LLen(ctx, p+"sw_q").Result(); n != 1 {
		t.Fatalf("restored list length %d", n)
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url                       string
		network, addr, user, pass string
		db                        int
		tls, insecure, wantErr    bool
	}{
		{url: "redis://", network: "tcp", addr: "127.0.0.1:6379"},
		{url: "redis://localhost:6380/13", network: "tcp", addr: "localhost:6380", db: 13},
		{url: "redis://:s%40cret@h/2", network: "tcp", addr: "h:6379", pass: "s@cret", db: 2},
		{url: "redis://u:p@h:1/", network: "tcp", addr: "h:1", user: "u", pass: "p"},
		{url: "rediss://h:6380/1?ssl_cert_reqs=CERT_NONE", network: "tcp", addr: "h:6380", db: 1, tls: true, insecure: true},
		{url: "rediss://h", network: "tcp", addr: "h:6379", tls: true},
		{url: "redis+socket:///tmp/r.sock?virtual_host=3", network: "unix", addr: "/tmp/r.sock", db: 3},
		{url: "unix:///tmp/r.sock?db=4", network: "unix", addr: "/tmp/r.sock", db: 4},
		{url: "redis://h/notanumber", wantErr: true},
		{url: "amqp://h", wantErr: true},
		{url: "socket://", wantErr: true},
	}
	for _, tc := range tests {
		o, err := ParseURL(tc.url)
		if tc.wantErr {
			if err == nil {
				t.Errorf("%s: no error", tc.url)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if o.Network != tc.network || o.Addr != tc.addr || o.Username != tc.user || o.Password != tc.pass || o.DB != tc.db {
			t.Errorf("%s: got %s %s %q %q db%d", tc.url, o.Network, o.Addr, o.Username, o.Password, o.DB)
		}
		if (o.TLSConfig != nil) != tc.tls || (o.TLSConfig != nil && o.TLSConfig.InsecureSkipVerify != tc.insecure) {
			t.Errorf("%s: TLS %+v", tc.url, o.TLSConfig)
		}
	}
}

// Touch keeps a held delivery out of the visibility sweep and never
// brings back an entry that is gone.
func TestTouchRefreshesUnackedIndex(t *testing.T) {
	// The consumer's own sweeps (start-up and periodic) must not interfere:
	// its transport uses a long timeout; a second one sweeps with a short one.
	tr := newTestTransport(t, Options{VisibilityTimeout: 24 * time.Hour})
	ctx := ctxT(t)
	p := tr.ks.prefix
	for i := 0; i < 2; i++ {
		if err := tr.Publish(ctx, "", "touch_q", &kombu.Message{Body: []byte("x"), ContentType: "text/plain"}); err != nil {
			t.Fatal(err)
		}
	}
	c := consumeT(t, tr, "touch_q")
	ds, err := c.Fetch(ctx, 2)
	if err != nil || len(ds) != 2 {
		t.Fatal(ds, err)
	}
	// Age both entries past the visibility timeout, then touch one.
	old := float64(time.Now().Add(-time.Hour).Unix())
	for _, d := range ds {
		tr.client.ZAdd(ctx, p+"unacked_index", redis.Z{Score: old, Member: d.Tag})
	}
	if err := c.Touch(ctx, ds[0]); err != nil {
		t.Fatal(err)
	}
	score, err := tr.client.ZScore(ctx, p+"unacked_index", ds[0].Tag).Result()
	if err != nil || time.Since(time.Unix(int64(score), 0)) > time.Minute {
		t.Fatalf("touched score %v, %v", score, err)
	}
	sweeper := newTestTransport(t, Options{VisibilityTimeout: time.Second, GlobalKeyprefix: p})
	// The consumer's own start-up sweep may hold the mutex for a moment.
	restored := 0
	for deadline := time.Now().Add(5 * time.Second); restored == 0 && time.Now().Before(deadline); {
		n, err := sweeper.RestoreVisible(ctx)
		if err != nil {
			t.Fatal(err)
		}
		restored += n
		time.Sleep(10 * time.Millisecond)
	}
	if restored != 1 {
		t.Fatalf("restored %d; want only the untouched one", restored)
	}
	if n, _ := tr.client.LLen(ctx, p+"touch_q").Result(); n != 1 {
		t.Fatalf("queue length %d after the sweep, want 1", n)
	}
	// The restored one is gone from the index; touching it adds nothing.
	if err := c.Touch(ctx, ds[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.client.ZScore(ctx, p+"unacked_index", ds[1].Tag).Result(); err != redis.Nil {
		t.Fatalf("Touch resurrected a restored entry: %v", err)
	}
}

// TestLazyHeadersDeliveries: with LazyHeaders the consumer hands out
// headers as JSON text, from the pop script and from BRPOP, and still
// reads the redelivered header kombu adds on a requeue.
func TestLazyHeadersDeliveries(t *testing.T) {
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	q := "lazy_q"
	publish := func(id string) {
		t.Helper()
		m := &kombu.Message{Body: []byte(id), ContentType: "text/plain", Headers: map[string]any{"id": id, "n": int64(len(id))}}
		if err := tr.Publish(ctx, "", q, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"A", "B"} {
		publish(id)
	}
	c := consumeT(t, tr, q)
	c.LazyHeaders()
	check := func(d *Delivery, redelivered bool) {
		t.Helper()
		m := d.Message
		if m.Headers != nil || m.HeadersJSON == "" {
			t.Fatalf("%s: headers %v, JSON %q: want the JSON text only", m.Body, m.Headers, m.HeadersJSON)
		}
		if d.Redelivered != redelivered {
			t.Errorf("%s: redelivered %v, want %v", m.Body, d.Redelivered, redelivered)
		}
		if err := m.DecodeHeaders(); err != nil || m.Headers["id"] != string(m.Body) || m.Headers["n"] != int64(len(m.Body)) {
			t.Errorf("%s: DecodeHeaders %v, %v", m.Body, m.Headers, err)
		}
	}
	ds, err := c.Fetch(ctx, 1)
	if err != nil || len(ds) != 1 || string(ds[0].Message.Body) != "A" {
		t.Fatal(ds, err)
	}
	check(ds[0], false)
	if err := c.Reject(ctx, ds[0], true); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		ds, err := c.Fetch(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			got[string(d.Message.Body)] = true
			check(d, string(d.Message.Body) == "A")
		}
		if err := c.Ack(ctx, ds...); err != nil {
			t.Fatal(err)
		}
	}
	// kombu's restore sets the header even where the message has no
	// delivery_info to mark.
	raw := `{"body": "RQ==", "content-type": "text/plain", "content-encoding": "utf-8", "headers": {"id": "E", "n": 1, ` +
		`"redelivered": true}, "properties": {"body_encoding": "base64", "delivery_tag": "lazy-e"}}`
	if err := tr.client.LPush(ctx, tr.QueueKey(q, 0), raw).Err(); err != nil {
		t.Fatal(err)
	}
	ds, err = c.Fetch(ctx, 1)
	if err != nil || len(ds) != 1 || string(ds[0].Message.Body) != "E" {
		t.Fatal(ds, err)
	}
	check(ds[0], true)
	if err := c.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
	// The queue is empty now: the next fetch waits in BRPOP.
	done := make(chan []*Delivery, 1)
	go func() {
		ds, err := c.Fetch(ctx, 1)
		if err != nil {
			t.Error(err)
		}
		done <- ds
	}()
	time.Sleep(50 * time.Millisecond)
	publish("CD")
	ds = <-done
	if len(ds) != 1 || string(ds[0].Message.Body) != "CD" {
		t.Fatalf("BRPOP delivery %v", ds)
	}
	check(ds[0], false)
	if err := c.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}
}
