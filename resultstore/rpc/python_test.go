package rpc

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/resultstore"
	"github.com/celerity-go/celerity/transports"
	amqptransport "github.com/celerity-go/celerity/transports/amqp"
)

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// TestPythonClientGetsResults: a Celery 5.2 client with rpc:// sends two
// tasks; we fetch them from RabbitMQ, store SUCCESS and FAILURE(ValueError)
// through the rpc backend, and the Python .get() returns 5 and raises
// ValueError.
func TestPythonClientGetsResults(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import celery").Run(); err != nil {
		skipOrFail(t, "python celery unavailable: %v", err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:5672", time.Second); err != nil {
		skipOrFail(t, "RabbitMQ not reachable: %v", err)
	} else {
		c.Close()
	}
	const url = "amqp://guest:guest@127.0.0.1:5672//"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tr, err := amqptransport.New(ctx, url, amqptransport.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	var rnd [4]byte
	rand.Read(rnd[:])
	queue := "celerity_rpc_test_" + hex.EncodeToString(rnd[:])
	t.Cleanup(func() { deleteQueue(url, queue) })
	if err := tr.Declare(ctx, transports.Queue{Name: queue, Durable: true}); err != nil {
		t.Fatal(err)
	}

	okID := "ffffffff-0000-4000-8000-" + hex.EncodeToString(rnd[:]) + "0001"
	failID := "ffffffff-0000-4000-8000-" + hex.EncodeToString(rnd[:]) + "0002"
	cmd := exec.CommandContext(ctx, py, "testdata/rpc_client.py", url, queue, okID, failID)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	c, err := tr.Consume(ctx, []string{queue}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ds []*transports.Delivery
	for len(ds) < 2 {
		got, err := c.Fetch(ctx, 2)
		if err != nil {
			t.Fatalf("fetch: %v\n%s", err, stderr.String())
		}
		ds = append(ds, got...)
	}
	// The backend uses a connection of its own, as a worker would.
	backend, err := Dial(ctx, url, amqptransport.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	for _, d := range ds {
		p := d.Message.Properties
		id, _ := d.Message.Headers["id"].(string)
		if p.ReplyTo == "" || p.CorrelationID != id {
			t.Fatalf("task message reply_to %q correlation_id %q id %q", p.ReplyTo, p.CorrelationID, id)
		}
		meta := &resultstore.Meta{TaskID: id, ReplyTo: p.ReplyTo, CorrelationID: p.CorrelationID}
		switch id {
		case okID:
			meta.Status, meta.Result = resultstore.Success, int64(5)
		case failID:
			meta.Status = resultstore.Failure
			meta.Result = &resultstore.ExceptionInfo{Type: "ValueError", Module: "builtins", Message: []any{"bad value"}}
			meta.Traceback = "Traceback (most recent call last):\nValueError: bad value\n"
		default:
			t.Fatalf("unexpected task id %q", id)
		}
		// STARTED first, like a worker with task_track_started.
		started := *meta
		started.Status, started.Result, started.Traceback = resultstore.Started, map[string]any{"pid": int64(1), "hostname": "go@test"}, ""
		if err := backend.Store(ctx, &started, meta); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Ack(ctx, ds...); err != nil {
		t.Fatal(err)
	}

	var out []string
	for l := range lines {
		out = append(out, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python: %v\nstdout: %q\nstderr: %s", err, out, stderr.String())
	}
	want := []string{"RESULT 5", `RAISED ValueError ["bad value"]`, "STATE FAILURE"}
	if len(out) != 4 || !strings.HasPrefix(out[0], "SENT ") {
		t.Fatalf("python output %q\nstderr: %s", out, stderr.String())
	}
	for i, w := range want {
		if out[i+1] != w {
			t.Errorf("line %d: %q, want %q", i+1, out[i+1], w)
		}
	}
	// The reply queue the client consumed is named after its oid.
	if oid := strings.TrimPrefix(out[0], "SENT "); oid != ds[0].Message.Properties.ReplyTo {
		t.Errorf("reply_to %q is not the client oid %q", ds[0].Message.Properties.ReplyTo, oid)
	}
}
