// Package compat_test proves wire compatibility: real Python Celery
// (Debian's /usr/bin/python3) publishes tasks and reads results, and the Go
// worker built from cmd/celerity executes them, on the real Redis and
// RabbitMQ. Tests skip when a service or Python Celery is missing, except
// under CI=true, where that is a failure.
package compat_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const python = "/usr/bin/python3"

var (
	workerBin string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "celerity-compat-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workerBin = filepath.Join(dir, "celerity")
	out, err := exec.Command("go", "build", "-race", "-o", workerBin, "../cmd/celerity").CombinedOutput()
	if err != nil {
		buildErr = fmt.Errorf("building the worker: %v\n%s", err, out)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// unavailable skips the test, or fails it under CI=true.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("required service missing under CI: "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

func redisAddr() string {
	if a := os.Getenv("COMPAT_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func amqpURL() string {
	if u := os.Getenv("COMPAT_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672//"
}

// brokerDB and backendDB keep the compat tests' Redis keys away from
// other suites; names inside them are unique per test as well.
const brokerDB, backendDB = 5, 6

func brokerURL() string  { return fmt.Sprintf("redis://%s/%d", redisAddr(), brokerDB) }
func backendURL() string { return fmt.Sprintf("redis://%s/%d", redisAddr(), backendDB) }

// requireRedis checks that the worker can be built, Python Celery imports
// and Redis answers.
func requireRedis(t *testing.T) *redis.Client {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	requirePython(t)
	c, err := net.DialTimeout("tcp", redisAddr(), time.Second)
	if err != nil {
		unavailable(t, "redis at %s: %v", redisAddr(), err)
	}
	c.Close()
	rc := redis.NewClient(&redis.Options{Addr: redisAddr(), DB: brokerDB})
	t.Cleanup(func() { rc.Close() })
	return rc
}

func requireAMQP(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	requirePython(t)
	c, err := net.DialTimeout("tcp", "127.0.0.1:5672", time.Second)
	if err != nil {
		unavailable(t, "rabbitmq: %v", err)
	}
	c.Close()
}

var pyOnce sync.Once
var pyErr error

func requirePython(t *testing.T) {
	t.Helper()
	pyOnce.Do(func() {
		out, err := exec.Command(python, "-c", "import celery, redis").CombinedOutput()
		if err != nil {
			pyErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if pyErr != nil {
		unavailable(t, "Python Celery (%s): %v", python, pyErr)
	}
}

// uniq returns a name unique to this test run.
func uniq(t *testing.T, prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s_%s_%s", prefix, name, hex.EncodeToString(b))
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a worker process under test.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startGoWorker starts the Go worker with the given arguments after
// "worker" and waits until it is consuming.
func startGoWorker(t *testing.T, args ...string) *proc {
	t.Helper()
	p := startProc(t, workerBin, append([]string{"worker"}, args...), nil)
	p.waitFor("ready.", 30*time.Second)
	return p
}

// startPyWorker starts a Python Celery worker running compat_test/testdata/tasks.py.
func startPyWorker(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	full := append([]string{"-m", "celery", "-A", "tasks", "worker", "-l", "INFO",
		"--without-gossip", "--without-mingle", "--without-heartbeat"}, args...)
	p := startProc(t, python, full, env)
	p.waitFor("ready.", 60*time.Second)
	return p
}

func startProc(t *testing.T, bin string, args []string, env map[string]string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "testdata"
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &proc{t: t, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(20 * time.Second)
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), out.String())
		}
	})
	return p
}

// waitFor waits until the process printed s.
func (p *proc) waitFor(s string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.out.String(), s) {
		select {
		case <-p.done:
			p.t.Fatalf("process exited before printing %q:\n%s", s, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %q:\n%s", s, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM (warm shutdown) and waits, killing after timeout.
func (p *proc) stop(timeout time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// kill9 kills the process group at once, as a crash would.
func (p *proc) kill9() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// count returns how many output lines contain s.
func (p *proc) count(s string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

// call is one send_task of the Python client.
type call struct {
	Name    string         `json:"name"`
	Args    []any          `json:"args,omitempty"`
	Kwargs  map[string]any `json:"kwargs,omitempty"`
	Options map[string]any `json:"options,omitempty"`
}

// outcome is what the Python client saw for one call.
type outcome struct {
	ID        string   `json:"id"`
	State     string   `json:"state"`
	Value     any      `json:"value"`
	ValueRepr string   `json:"value_repr"`
	ValueType string   `json:"value_type"`
	ExcType   string   `json:"exc_type"`
	ExcModule string   `json:"exc_module"`
	ExcStr    string   `json:"exc_str"`
	Traceback *string  `json:"traceback"`
	States    []string `json:"states"`
}

type clientSpec struct {
	Broker  string         `json:"broker"`
	Backend string         `json:"backend,omitempty"`
	Conf    map[string]any `json:"conf,omitempty"`
	Calls   []call         `json:"calls"`
	Timeout float64        `json:"timeout,omitempty"`
	States  bool           `json:"states,omitempty"`
}

// pyClient runs testdata/client.py: Python publishes the calls and reads
// every result.
func pyClient(t *testing.T, spec clientSpec) []outcome {
	t.Helper()
	if spec.Timeout == 0 {
		spec.Timeout = 30
	}
	in, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(spec.Timeout*float64(len(spec.Calls)+2))*time.Second+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "client.py")
	cmd.Dir = "testdata"
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, stderr.String())
	}
	var res []outcome
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python client output: %v\n%s\n%s", err, out, stderr.String())
	}
	if len(res) != len(spec.Calls) {
		t.Fatalf("python client returned %d results for %d calls", len(res), len(spec.Calls))
	}
	return res
}

// runPy runs a short Python program with /usr/bin/python3 and returns its
// standard output.
func runPy(t *testing.T, program string, env map[string]string) string {
	t.Helper()
	cmd := exec.Command(python, "-c", program)
	cmd.Dir = "testdata"
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanupQueue deletes a Redis queue's lists and bindings after the test.
func cleanupQueue(t *testing.T, rc *redis.Client, queues ...string) {
	t.Cleanup(func() {
		ctx := context.Background()
		for _, q := range queues {
			keys := []string{q, "_kombu.binding." + q}
			for _, p := range []string{"3", "6", "9"} {
				keys = append(keys, q+"\x06\x16"+p)
			}
			rc.Del(ctx, keys...)
		}
	})
}
