package celerity_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity"
	redistransport "github.com/celerity-go/celerity/transports/redis"
)

// privateRedis is a redis-server of the test's own, persisting every write
// before it replies (appendfsync always), so that it can be killed and
// started again with what it acknowledged.
type privateRedis struct {
	t    *testing.T
	bin  string
	args []string
	cmd  *exec.Cmd
	url  string
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server required under CI: %v", err)
		}
		t.Skipf("no redis-server: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &privateRedis{t: t, bin: bin, url: fmt.Sprintf("redis://127.0.0.1:%d/0", port), args: []string{
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--save", "", "--appendonly", "yes", "--appendfsync", "always",
	}}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, r.args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	opts, _ := redis.ParseURL(r.url)
	c := redis.NewClient(opts)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatal("private redis-server did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill stops the server at once (SIGKILL), as a crash would.
func (r *privateRedis) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

// A broker that goes away in the middle of a backlog and comes back half
// a second later with what it acknowledged (a crash and restart of a
// persistent Redis) costs nothing: the worker reconnects with backoff,
// every task ends with one SUCCESS and ran once, and unacked is empty.
func TestRedisServerRestartLosesNothing(t *testing.T) {
	inBothAckModes(t, serverRestartLosesNothing)
}

func serverRestartLosesNothing(t *testing.T, acksLate bool) {
	srv := startPrivateRedis(t)
	k := newKillableAt(t, srv.url, "restart", redistransport.Options{
		// Nothing may depend on the sweep: a pop whose reply died with
		// the server is sent again and returns what it recorded.
		VisibilityTimeout: time.Hour,
		RestoreInterval:   250 * time.Millisecond,
	})
	const total = 3000
	ids := publishTasks(t, k.tr, "t.work", total)
	var runs runCounter
	w := startWorker(t, k, celerity.Config{Concurrency: 4, AcksLate: acksLate}, "t.work", runs.handler(time.Millisecond))
	runs.waitStarted(t, 500)
	srv.kill()
	atKill := runs.started.Load()
	time.Sleep(500 * time.Millisecond)
	srv.start()
	if atKill >= total {
		t.Fatalf("all %d tasks started before the server was killed", total)
	}

	k.waitSucceeded(ids, &runs, "after the server's restart")
	w.stop()
	k.checkUnackedEmpty()
	twice := runs.checkOnce(t)
	t.Logf("%d tasks, %d started when the server was killed, %d ran more than once", total, atKill, twice)
}
