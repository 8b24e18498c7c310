package protocolv2

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/celerity-go/celerity/kombu"
)

const (
	compatPython    = "/usr/bin/python3"
	compatBrokerDB  = 11
	compatBackendDB = 12
	compatRedisAddr = "127.0.0.1:6379"
)

// skipOrFail skips the test, or fails it when CI=true.
func skipOrFail(t *testing.T, format string, a ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, a...)
	}
	t.Skipf(format, a...)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCompatPythonWorker publishes messages built by Encode to Redis and
// lets a real Python Celery 5.2 worker execute them; the results it stores
// prove the messages are accepted as Celery's own.
func TestCompatPythonWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("compat test in -short mode")
	}
	if _, err := os.Stat(compatPython); err != nil {
		skipOrFail(t, "no %s: %v", compatPython, err)
	}
	if out, err := exec.Command(compatPython, "-c", "import celery, msgpack").CombinedOutput(); err != nil {
		skipOrFail(t, "python celery not importable: %v: %s", err, out)
	}
	ctx := context.Background()
	broker := redis.NewClient(&redis.Options{Addr: compatRedisAddr, DB: compatBrokerDB})
	backend := redis.NewClient(&redis.Options{Addr: compatRedisAddr, DB: compatBackendDB})
	t.Cleanup(func() { broker.Close(); backend.Close() })
	if err := broker.Ping(ctx).Err(); err != nil {
		skipOrFail(t, "redis not reachable: %v", err)
	}

	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	queue := "pv2compat-" + hex.EncodeToString(suffix[:])
	reply := NewID()
	now := time.Now().UTC()

	type job struct {
		name   string
		task   *Task
		opt    EncodeOptions
		status string
		result any // JSON-decoded expected result
	}
	newTask := func(name string, args []any, kwargs map[string]any) *Task {
		return &Task{ID: NewID(), Name: name, Args: args, Kwargs: kwargs}
	}
	jobs := []job{
		{name: "basic", task: newTask("compat.add", []any{int64(2), int64(3)}, nil), status: "SUCCESS", result: 5.0},
		{name: "kwargs", task: newTask("compat.add", nil, map[string]any{"x": int64(40), "y": 2.5}), status: "SUCCESS", result: 42.5},
		{name: "unicode", task: newTask("compat.echo", []any{"héllo ☃", []any{int64(1), nil, true}}, map[string]any{"k": "ü\n'\""}),
			status: "SUCCESS", result: map[string]any{"args": []any{"héllo ☃", []any{1.0, nil, true}}, "kwargs": map[string]any{"k": "ü\n'\""}}},
		{name: "zlib", task: newTask("compat.add", []any{int64(40), int64(2)}, nil), opt: EncodeOptions{Compression: "zlib"}, status: "SUCCESS", result: 42.0},
		{name: "msgpack", task: newTask("compat.add", []any{int64(1), int64(2)}, nil), opt: EncodeOptions{Serializer: "msgpack"}, status: "SUCCESS", result: 3.0},
		{name: "eta-expires-timelimit", task: func() *Task {
			tk := newTask("compat.add", []any{int64(7), int64(8)}, nil)
			tk.ETA = now.Add(-time.Second)
			tk.Expires = now.Add(10 * time.Minute).In(time.FixedZone("", 8*3600))
			tk.TimeLimit = TimeLimit{Hard: Seconds(30), Soft: Seconds(20)}
			tk.Shadow = "compat-shadow"
			tk.Extra = map[string]any{"x-custom": "v"}
			tk.Callbacks = nil
			return tk
		}(), status: "SUCCESS", result: 15.0},
		{name: "expired", task: func() *Task {
			tk := newTask("compat.add", []any{int64(1), int64(1)}, nil)
			tk.Expires = now.Add(-time.Minute)
			return tk
		}(), status: "REVOKED"},
	}

	var ids []string
	t.Cleanup(func() {
		keys := []string{queue, "_kombu.binding." + queue}
		broker.Del(ctx, keys...)
		// The worker's pidbox binding names its node, which contains the queue.
		members, _ := broker.SMembers(ctx, "_kombu.binding.celery.pidbox").Result()
		for _, m := range members {
			if strings.Contains(m, queue) {
				broker.SRem(ctx, "_kombu.binding.celery.pidbox", m)
			}
		}
		for _, id := range ids {
			backend.Del(ctx, "celery-task-meta-"+id)
		}
	})

	for _, j := range jobs {
		opt := j.opt
		opt.ReplyTo = reply
		opt.RoutingKey = queue
		m, err := Encode(j.task, opt)
		if err != nil {
			t.Fatalf("%s: Encode: %v", j.name, err)
		}
		env, err := kombu.AppendEnvelope(nil, m)
		if err != nil {
			t.Fatalf("%s: AppendEnvelope: %v", j.name, err)
		}
		if err := broker.LPush(ctx, queue, env).Err(); err != nil {
			t.Fatalf("LPUSH: %v", err)
		}
		ids = append(ids, j.task.ID)
	}

	dir, _ := filepath.Abs("testdata/celerycompat")
	var logs lockedBuffer
	cmd := exec.Command(compatPython, "-m", "celery", "-A", "compattasks", "worker",
		"-Q", queue, "-n", queue+"@%h", "-c", "1", "-P", "solo",
		"--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"COMPAT_BROKER=redis://"+compatRedisAddr+"/11",
		"COMPAT_BACKEND=redis://"+compatRedisAddr+"/12",
		"COMPAT_QUEUE="+queue,
		"PYTHONDONTWRITEBYTECODE=1",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
		_ = cmd.Wait()
	})

	deadline := time.Now().Add(90 * time.Second)
	for _, j := range jobs {
		key := "celery-task-meta-" + j.task.ID
		var raw string
		for {
			v, err := backend.Get(ctx, key).Result()
			if err == nil {
				var meta map[string]any
				if json.Unmarshal([]byte(v), &meta) == nil && meta["status"] != "STARTED" {
					raw = v
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no result for %s before the deadline; worker log:\n%s", j.name, j.task.ID, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		var meta map[string]any
		if err := json.Unmarshal([]byte(raw), &meta); err != nil {
			t.Fatalf("%s: meta %q: %v", j.name, raw, err)
		}
		eq(t, j.name+" status", meta["status"], j.status)
		eq(t, j.name+" task_id", meta["task_id"], j.task.ID)
		if j.status == "SUCCESS" {
			eq(t, j.name+" result", meta["result"], j.result)
		}
	}
	if t.Failed() {
		t.Logf("worker log:\n%s", logs.String())
	}
	// The worker logged our argsrepr for the received message.
	if out := logs.String(); !strings.Contains(out, "compat-shadow") {
		t.Errorf("worker log does not mention the shadow name:\n%s", out)
	}
}
