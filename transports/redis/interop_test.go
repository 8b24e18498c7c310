package redistransport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/celerity-go/celerity/kombu"
	"github.com/celerity-go/celerity/transports"
)

const python = "/usr/bin/python3"

// requireKombu skips unless real Python kombu is installed (fails under
// CI=true).
func requireKombu(t *testing.T) {
	t.Helper()
	requireRedis(t)
	if err := exec.Command(python, "-c", "import kombu, redis").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python kombu not available: %v", err)
		}
		t.Skipf("python kombu not available: %v", err)
	}
}

type pyMessage struct {
	Body          map[string]any `json:"body"`
	Headers       map[string]any `json:"headers"`
	Redelivered   bool           `json:"redelivered"`
	Priority      int            `json:"priority"`
	DeliveryTag   string         `json:"delivery_tag"`
	CorrelationID string         `json:"correlation_id"`
}

func runKombu(t *testing.T, prefix, cmd, queue string, n int) []pyMessage {
	t.Helper()
	out, err := exec.Command(python, "testdata/kombu_helper.py", testURL, prefix, cmd, queue, fmt.Sprint(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("kombu_helper %s: %v\n%s", cmd, err, out)
	}
	var msgs []pyMessage
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var m pyMessage
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("bad helper output %q: %v", line, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestInteropPythonPublishesGoConsumes(t *testing.T) {
	requireKombu(t)
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	q := "interop_py2go"
	runKombu(t, tr.ks.prefix, "publish", q, 4) // priorities 0,1,2,3
	c := consumeT(t, tr, q)
	var got []*transports.Delivery
	for len(got) < 4 {
		ds, err := c.Fetch(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ds...)
	}
	// 0,1,2 share the step-0 list (FIFO); 3 is in step 3, served last.
	for i, d := range got {
		var body map[string]any
		if err := json.Unmarshal(d.Message.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body["n"] != float64(i) || d.Message.Headers["id"] != fmt.Sprintf("py-%d", i) {
			t.Errorf("delivery %d: body %v headers %v", i, body, d.Message.Headers)
		}
		if d.Queue != q || d.Message.Properties.Priority != i || d.Message.Properties.CorrelationID != fmt.Sprintf("py-%d", i) {
			t.Errorf("delivery %d: queue %q props %+v", i, d.Queue, d.Message.Properties)
		}
		if !uuid4RE.MatchString(d.Tag) {
			t.Errorf("tag %q", d.Tag)
		}
	}
	if err := c.Ack(ctx, got...); err != nil {
		t.Fatal(err)
	}
	if n, _ := tr.client.HLen(ctx, tr.ks.prefix+"unacked").Result(); n != 0 {
		t.Errorf("unacked has %d entries", n)
	}
}

func TestInteropGoPublishesPythonConsumes(t *testing.T) {
	requireKombu(t)
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	q := "interop_go2py"
	if err := tr.Declare(ctx, transports.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := &kombu.Message{
			Body: []byte(fmt.Sprintf(`{"n": %d, "s": "é/\"x\""}`, i)), ContentType: "application/json", ContentEncoding: "utf-8",
			Headers:    map[string]any{"id": fmt.Sprintf("go-%d", i), "task": "interop.task"},
			Properties: kombu.Properties{CorrelationID: fmt.Sprintf("go-%d", i), DeliveryMode: 2},
		}
		if err := tr.Publish(ctx, "", q, m); err != nil {
			t.Fatal(err)
		}
	}
	msgs := runKombu(t, tr.ks.prefix, "consume", q, 3)
	if len(msgs) != 3 {
		t.Fatalf("python consumed %d", len(msgs))
	}
	for i, m := range msgs {
		if m.Body["n"] != float64(i) || m.Body["s"] != `é/"x"` || m.Headers["id"] != fmt.Sprintf("go-%d", i) || m.CorrelationID != fmt.Sprintf("go-%d", i) {
			t.Errorf("python saw %+v", m)
		}
		if m.Redelivered || !uuid4RE.MatchString(m.DeliveryTag) {
			t.Errorf("python saw redelivered=%v tag=%q", m.Redelivered, m.DeliveryTag)
		}
	}
	if n, _ := tr.client.HLen(ctx, tr.ks.prefix+"unacked").Result(); n != 0 {
		t.Errorf("unacked has %d entries after python acked", n)
	}
}

func TestInteropPythonRestoresOurCrash(t *testing.T) {
	requireKombu(t)
	tr := newTestTransport(t, Options{})
	ctx := ctxT(t)
	q := "interop_crash"
	if err := tr.Declare(ctx, transports.Queue{Name: q}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		m := &kombu.Message{Body: []byte(fmt.Sprintf(`{"n": %d}`, i)), ContentType: "application/json", ContentEncoding: "utf-8",
			Headers: map[string]any{"id": fmt.Sprintf("crash-%d", i)}, Properties: kombu.Properties{Priority: 7}}
		if err := tr.Publish(ctx, "", q, m); err != nil {
			t.Fatal(err)
		}
	}
	c := consumeT(t, tr, q)
	var ds []*transports.Delivery
	for len(ds) < 2 {
		got, err := c.Fetch(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, got...)
	}
	// Crash: never settled. Python's visibility sweep must restore them.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _ := tr.client.HLen(ctx, tr.ks.prefix+"unacked").Result(); n != 2 {
		t.Fatalf("unacked has %d entries, want 2", n)
	}
	msgs := runKombu(t, tr.ks.prefix, "restore", q, 2)
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[fmt.Sprint(m.Headers["id"])] = true
		if !m.Redelivered || m.Headers["redelivered"] != true || m.Priority != 7 {
			t.Errorf("python saw %+v, want redelivered priority 7", m)
		}
	}
	if !seen["crash-0"] || !seen["crash-1"] {
		t.Errorf("python consumed %v", msgs)
	}
	if n, _ := tr.client.HLen(ctx, tr.ks.prefix+"unacked").Result(); n != 0 {
		t.Errorf("unacked has %d entries after python acked", n)
	}
	if n, _ := tr.client.Exists(ctx, tr.ks.prefix+"unacked_mutex").Result(); n != 0 {
		t.Error("python left unacked_mutex")
	}
}
