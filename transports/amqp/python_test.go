package amqptransport

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/transports"
)

func runPython(t *testing.T, args ...string) (string, error) {
	t.Helper()
	py := python(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
	return string(out), err
}

// listQueue returns rabbitmqctl's "durable auto_delete exclusive arguments"
// line for queue name on vhost "/".
func listQueue(t *testing.T, name string) string {
	out := rabbitmqctl(t, "list_queues", "-p", "/", "name", "durable", "auto_delete", "exclusive", "arguments")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.SplitN(line, "\t", 2); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	t.Fatalf("queue %s not listed:\n%s", name, out)
	return ""
}

func listExchange(t *testing.T, name string) string {
	out := rabbitmqctl(t, "list_exchanges", "-p", "/", "name", "type", "durable", "auto_delete", "internal", "arguments")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.SplitN(line, "\t", 2); len(f) == 2 && f[0] == name {
			return f[1]
		}
	}
	t.Fatalf("exchange %s not listed:\n%s", name, out)
	return ""
}

// TestDeclareCompatibleWithKombu declares Queue(name, Exchange(name),
// routing_key="task_a") from Python then Go, and from Go then Python, with
// and without x-max-priority and as a quorum queue: no side may get
// PRECONDITION_FAILED, and the broker shows kombu's flags.
func TestDeclareCompatibleWithKombu(t *testing.T) {
	url := rabbitURL(t)
	python(t)
	cases := []struct {
		name  string
		prio  int
		qtype string
		want  string
	}{
		{"plain", 0, "", "true\tfalse\tfalse\t[]"},
		{"priority", 10, "", `true	false	false	[{"x-max-priority",10}]`},
		{"quorum", 0, "quorum", `true	false		[{"x-queue-type","quorum"}]`}, // rabbitmqctl leaves exclusive blank for quorum
	}
	for _, c := range cases {
		for _, pythonFirst := range []bool{true, false} {
			t.Run(c.name+"/pythonFirst="+strconv.FormatBool(pythonFirst), func(t *testing.T) {
				tr := newTestTransport(t, url, Options{})
				name := uniq(t)
				deleteAtCleanup(t, url, []string{name}, []string{name})
				q := transports.Queue{Name: name, Exchange: name, RoutingKey: "task_a", Durable: true, MaxPriority: c.prio}
				if c.qtype != "" {
					q.Arguments = map[string]any{"x-queue-type": c.qtype}
				}
				py := func() {
					if out, err := runPython(t, "testdata/declare.py", url, name, "task_a", strconv.Itoa(c.prio), c.qtype); err != nil {
						t.Fatalf("python declare: %v\n%s", err, out)
					}
				}
				goDeclare := func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					if err := tr.Declare(ctx, q); err != nil {
						t.Fatalf("go declare: %v", err)
					}
				}
				if pythonFirst {
					py()
					goDeclare()
				} else {
					goDeclare()
					py()
				}
				// Declaring again from Go is idempotent as well.
				goDeclare()
				// Consuming works: per-consumer QoS on quorum queues, global otherwise.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				cons, err := tr.Consume(ctx, []string{name}, 4)
				if err != nil {
					t.Fatalf("consume: %v", err)
				}
				if g := cons.(*consumer).global; g != (c.qtype != "quorum") {
					t.Errorf("global qos %v", g)
				}
				cons.Close()
				if got := listQueue(t, name); got != c.want {
					t.Errorf("queue: %q, want %q", got, c.want)
				}
				if got := listExchange(t, name); got != "direct\ttrue\tfalse\tfalse\t[]" {
					t.Errorf("exchange: %q", got)
				}
				out := rabbitmqctl(t, "list_bindings", "-p", "/", "source_name", "destination_name", "routing_key")
				if !strings.Contains(out, name+"\t"+name+"\ttask_a") {
					t.Errorf("binding %s -> %s key task_a missing:\n%s", name, name, out)
				}
			})
		}
	}
}

// TestFetchPythonSendTask: a Celery 5.2 client send_task()s over amqp://;
// we fetch it and check the kombu message field by field.
func TestFetchPythonSendTask(t *testing.T) {
	url := rabbitURL(t)
	python(t)
	tr := newTestTransport(t, url, Options{})
	name := uniq(t)
	declareTestQueue(t, tr, url, transports.Queue{Name: name, Durable: true})
	const id = "eeeeeeee-0000-4000-8000-000000000001"
	if out, err := runPython(t, "testdata/send_task.py", url, name, id, "my-reply-q"); err != nil {
		t.Fatalf("send_task: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tr.Consume(ctx, []string{name}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := fetchN(t, ctx, c, 1)[0]
	m := d.Message
	h := m.Headers
	if h["task"] != "wiretasks.add" || h["id"] != id || h["root_id"] != id || h["lang"] != "py" ||
		h["retries"] != int64(0) || h["parent_id"] != nil || h["x-custom"] != "v" || h["argsrepr"] != "(2, 3)" {
		t.Errorf("headers %#v", h)
	}
	if _, ok := h["expires"].(string); !ok {
		t.Errorf("expires header %#v", h["expires"])
	}
	if tl, ok := h["timelimit"].([]any); !ok || len(tl) != 2 || tl[0] != nil || tl[1] != nil {
		t.Errorf("timelimit %#v", h["timelimit"])
	}
	p := m.Properties
	if p.CorrelationID != id || p.ReplyTo != "my-reply-q" || p.DeliveryMode != 2 || p.Priority != 3 || p.Expiration != "120000" {
		t.Errorf("properties %+v", p)
	}
	if m.ContentType != "application/json" || m.ContentEncoding != "utf-8" {
		t.Errorf("content %q %q", m.ContentType, m.ContentEncoding)
	}
	if !strings.HasPrefix(string(m.Body), `[[2, 3], {"z": null}, {`) {
		t.Errorf("body %s", m.Body)
	}
	if d.Queue != name || p.DeliveryInfo.RoutingKey != name {
		t.Errorf("queue %q routing %+v", d.Queue, p.DeliveryInfo)
	}
	if err := c.Ack(ctx, d); err != nil {
		t.Fatal(err)
	}
}
