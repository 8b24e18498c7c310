package amqptransport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const rabbitAddr = "127.0.0.1:5672"

// rabbitURL returns the broker URL for vhost "/" or skips the test when
// RabbitMQ is not reachable (fails under CI=true).
func rabbitURL(t testing.TB) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", rabbitAddr, time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("RabbitMQ not reachable: %v", err)
		}
		t.Skipf("RabbitMQ not reachable: %v", err)
	}
	c.Close()
	return "amqp://guest:guest@" + rabbitAddr + "//"
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]+`)

// uniq returns a name unique to this test run.
func uniq(t testing.TB) string {
	var b [4]byte
	rand.Read(b[:])
	return "celerity_" + strings.Trim(nonWord.ReplaceAllString(t.Name(), "_"), "_") + "_" + hex.EncodeToString(b[:])
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestTransport connects and closes the transport at cleanup.
func newTestTransport(t testing.TB, url string, opts Options) *Transport {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := New(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// rawChannel opens a plain amqp091 channel for inspection, closed at cleanup.
func rawChannel(t testing.TB, url string) *amqp.Channel {
	t.Helper()
	bu, err := parseBrokerURLs(url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.DialConfig(bu[0].dial, amqp.Config{Vhost: bu[0].vhost})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ch
}

// deleteAtCleanup removes queues and exchanges (by name) when the test ends.
func deleteAtCleanup(t testing.TB, url string, queues, exchanges []string) {
	t.Helper()
	t.Cleanup(func() {
		bu, _ := parseBrokerURLs(url)
		conn, err := amqp.DialConfig(bu[0].dial, amqp.Config{Vhost: bu[0].vhost})
		if err != nil {
			return
		}
		defer conn.Close()
		for _, q := range queues {
			if ch, err := conn.Channel(); err == nil {
				ch.QueueDelete(q, false, false, false)
				ch.Close()
			}
		}
		for _, e := range exchanges {
			if ch, err := conn.Channel(); err == nil {
				ch.ExchangeDelete(e, false, false)
				ch.Close()
			}
		}
	})
}

// queueDepth returns the number of ready messages in q.
func queueDepth(t testing.TB, url, q string) int {
	t.Helper()
	ch := rawChannel(t, url)
	st, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.Messages
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rabbitmqctl runs rabbitmqctl or skips when it is unavailable.
func rabbitmqctl(t testing.TB, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rabbitmqctl not found")
		}
		t.Skip("rabbitmqctl not found")
	}
	out, err := exec.Command(path, append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// testVhost creates a vhost for guest, deleted at cleanup, and returns its
// broker URL.
func testVhost(t testing.TB) string {
	t.Helper()
	rabbitURL(t)
	name := uniq(t)
	rabbitmqctl(t, "add_vhost", name)
	t.Cleanup(func() { rabbitmqctl(t, "delete_vhost", name) })
	rabbitmqctl(t, "set_permissions", "-p", name, "guest", ".*", ".*", ".*")
	return "amqp://guest:guest@" + rabbitAddr + "/" + name
}

// python returns /usr/bin/python3 if it has celery, else skips (fails under
// CI=true).
func python(t testing.TB) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import celery, kombu").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python celery unavailable: %v", err)
		}
		t.Skipf("python celery unavailable: %v", err)
	}
	return py
}

// logRecorder is a slog handler that keeps message texts.
type logRecorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newLogRecorder() (*slog.Logger, func() []string) {
	r := logRecorder{mu: &sync.Mutex{}, msgs: new([]string)}
	return slog.New(r), func() []string {
		r.mu.Lock()
		defer r.mu.Unlock()
		return append([]string(nil), *r.msgs...)
	}
}

func (r logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.msgs = append(*r.msgs, rec.Level.String()+" "+rec.Message)
	return nil
}
func (r logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r logRecorder) WithGroup(string) slog.Handler      { return r }
