package compat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// semBroker is one broker the task-semantics tests run on: the Go worker
// and the Python client share it, results go to the compat Redis backend.
// On Redis every test uses its own global_keyprefix, so kombu processes of
// other suites sharing the database (a visibility sweep with a short
// visibility_timeout restores every old entry of unacked_index) cannot
// touch the messages this test's worker holds.
type semBroker struct {
	name   string
	url    string
	prefix string // Redis global_keyprefix
}

func semBrokers() []semBroker {
	return []semBroker{{name: "redis", url: brokerURL()}, {name: "amqp", url: amqpURL()}}
}

// forEachBroker runs fn as a subtest per broker with a fresh queue.
func forEachBroker(t *testing.T, fn func(t *testing.T, b semBroker, queue string)) {
	for _, b := range semBrokers() {
		t.Run(b.name, func(t *testing.T) {
			q := uniq(t, "sem")
			switch b.name {
			case "redis":
				rc := requireRedis(t)
				b.prefix = q + ":"
				t.Cleanup(func() {
					ctx := context.Background()
					keys, _ := rc.Keys(ctx, b.prefix+"*").Result()
					if len(keys) > 0 {
						rc.Del(ctx, keys...)
					}
				})
			case "amqp":
				requireRedis(t) // the result backend
				requireAMQP(t)
				t.Cleanup(func() { deleteAMQPQueue(q) })
			}
			fn(t, b, q)
		})
	}
}

// semWorkerArgs starts from goWorkerArgs' shape; settings are YAML lines
// for --config (the broker's transport options are added).
func semWorkerArgs(t *testing.T, b semBroker, queue, settings string, extra ...string) []string {
	if b.prefix != "" {
		settings += "broker_transport_options: {global_keyprefix: \"" + b.prefix + "\"}\n"
	}
	args := []string{"-b", b.url, "--result-backend", backendURL(), "-Q", queue,
		"-n", uniq(t, "go") + "@%h", "-c", "4"}
	if settings != "" {
		args = append(args, "--config", workerConfigFile(t, settings))
	}
	return append(args, extra...)
}

// semConf is the Python client's configuration for broker b.
func semConf(b semBroker, queue string) map[string]any {
	c := clientConf(queue)
	if b.prefix != "" {
		c["broker_transport_options"] = map[string]any{"global_keyprefix": b.prefix}
	}
	return c
}

// workerConfigFile writes a YAML settings file for --config.
func workerConfigFile(t *testing.T, yaml string) string {
	p := filepath.Join(t.TempDir(), "celerity.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// resultMeta reads a stored result document from the backend.
func resultMeta(t *testing.T, id string) map[string]any {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: redisAddr(), DB: backendDB})
	defer rc.Close()
	raw, err := rc.Get(context.Background(), "celery-task-meta-"+id).Bytes()
	if err != nil {
		t.Fatalf("result of %s: %v", id, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// parseISO reads Python isoformat output, naive ones as UTC.
func parseISO(t *testing.T, s string) time.Time {
	t.Helper()
	for _, layout := range []string{"2006-01-02T15:04:05.999999-07:00", "2006-01-02T15:04:05.999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			return v
		}
	}
	t.Fatalf("bad time %q", s)
	return time.Time{}
}

func dateDone(t *testing.T, id string) time.Time {
	t.Helper()
	s, _ := resultMeta(t, id)["date_done"].(string)
	return parseISO(t, s)
}

// pySend publishes the calls with testdata/send_only.py and returns their
// task ids without waiting for results.
func pySend(t *testing.T, spec clientSpec) []string {
	t.Helper()
	in, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "send_only.py")
	cmd.Dir = "testdata"
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python send_only: %v\n%s", err, stderr.String())
	}
	var ids []string
	if err := json.Unmarshal(out, &ids); err != nil || len(ids) != len(spec.Calls) {
		t.Fatalf("python send_only output %q: %v", out, err)
	}
	return ids
}

// waitResults polls the backend until every id has a ready state and
// returns the stored documents.
func waitResults(t *testing.T, ids []string, timeout time.Duration) map[string]map[string]any {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: redisAddr(), DB: backendDB})
	defer rc.Close()
	ctx := context.Background()
	out := make(map[string]map[string]any, len(ids))
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, id := range ids {
			if _, ok := out[id]; !ok {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return out
		}
		keys := make([]string, len(missing))
		for i, id := range missing {
			keys[i] = "celery-task-meta-" + id
		}
		vals, err := rc.MGet(ctx, keys...).Result()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(s), &m); err != nil {
				t.Fatal(err)
			}
			switch m["status"] {
			case "SUCCESS", "FAILURE", "REVOKED":
				out[missing[i]] = m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d results missing after %v", len(ids)-len(out), len(ids), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func metaTime(t *testing.T, m map[string]any, key string) time.Time {
	t.Helper()
	s, _ := m[key].(string)
	return parseISO(t, s)
}

// etaOf returns the eta tasks.request_info saw.
func etaOf(t *testing.T, o outcome) time.Time {
	t.Helper()
	m, _ := o.Value.(map[string]any)
	s, _ := m["eta"].(string)
	if s == "" {
		t.Fatalf("no eta in %v (%s %s)", o.Value, o.ExcType, o.ExcStr)
	}
	return parseISO(t, s)
}

// countdown=2 runs between 2 and 2.5 s after the send (the client's eta is
// send time + 2 s); the same with the seed's client settings (Asia/Shanghai,
// enable_utc=False) for countdown, an aware eta and a naive local eta (read
// in the worker's timezone setting, as a Celery worker with the same
// settings reads it).
func TestSemanticsCountdownAndETA(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b semBroker, q string) {
		startGoWorker(t, semWorkerArgs(t, b, q, "timezone: Asia/Shanghai\n")...)
		sh, err := time.LoadLocation("Asia/Shanghai")
		if err != nil {
			t.Skipf("no tz database: %v", err)
		}
		res := pyClient(t, clientSpec{Broker: b.url, Backend: backendURL(), Conf: semConf(b, q), Calls: []call{
			{Name: "tasks.request_info", Options: map[string]any{"countdown": 2}},
		}})
		eta := etaOf(t, res[0])
		sent := eta.Add(-2 * time.Second)
		if d := dateDone(t, res[0].ID).Sub(sent); d < 2*time.Second || d > 2500*time.Millisecond {
			t.Errorf("countdown=2 ran %v after the send", d)
		}

		// The seed's client settings.
		conf := semConf(b, q)
		conf["timezone"] = "Asia/Shanghai"
		conf["enable_utc"] = false
		at := time.Now().Add(3 * time.Second)
		naive := at.In(sh).Format("2006-01-02T15:04:05.000000")
		aware := at.In(sh).Format("2006-01-02T15:04:05.000000-07:00")
		res = pyClient(t, clientSpec{Broker: b.url, Backend: backendURL(), Conf: conf, Calls: []call{
			{Name: "tasks.request_info", Options: map[string]any{"countdown": 2}},
			{Name: "tasks.request_info", Options: map[string]any{"eta": aware}},
			{Name: "tasks.request_info", Options: map[string]any{"eta": naive}},
		}})
		if e := etaOf(t, res[0]); !strings.HasSuffix(res[0].Value.(map[string]any)["eta"].(string), "+08:00") {
			t.Errorf("Shanghai client countdown eta %v: want a +08:00 offset", e)
		}
		for i, o := range res {
			want := etaOf(t, o)
			if i == 2 {
				want = at.Truncate(time.Microsecond)
			}
			if i > 0 && !etaOf(t, o).Equal(at.Truncate(time.Microsecond)) {
				t.Errorf("call %d: worker read eta %v, want %v", i, etaOf(t, o), at)
			}
			if d := dateDone(t, o.ID).Sub(want); d < 0 || d > 500*time.Millisecond {
				t.Errorf("call %d: ran %v after its eta %v", i, d, want)
			}
		}
	})
}

// 500 tasks with countdowns spread over 5 s, sent in random order, all run
// once, each within 100 ms after its ETA (so in ETA order within 100 ms),
// while 200 undelayed tasks sent after them finish before the first ETA.
func TestSemanticsManyETAs(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b semBroker, q string) {
		w := startGoWorker(t, semWorkerArgs(t, b, q, "")...)
		const n = 500
		perm := rand.Perm(n)
		calls := make([]call, 0, n+200)
		for _, k := range perm {
			calls = append(calls, call{Name: "tasks.request_info", Args: []any{k},
				Options: map[string]any{"countdown": 3 + float64(k)*0.01}})
		}
		for i := range 200 {
			calls = append(calls, call{Name: "tasks.add", Args: []any{i, 1}})
		}
		ids := pySend(t, clientSpec{Broker: b.url, Conf: semConf(b, q), Calls: calls})
		metas := waitResults(t, ids, 60*time.Second)
		firstETA := time.Time{}
		var late []time.Duration
		for _, id := range ids[:n] {
			m := metas[id]
			if m["status"] != "SUCCESS" {
				t.Fatalf("%s: %v %v", id, m["status"], m["result"])
			}
			info, _ := m["result"].(map[string]any)
			eta := metaTime(t, info, "eta")
			if firstETA.IsZero() || eta.Before(firstETA) {
				firstETA = eta
			}
			d := metaTime(t, m, "date_done").Sub(eta)
			late = append(late, d)
			if d < 0 || d > 100*time.Millisecond {
				t.Errorf("%s ran %v after its eta", id, d)
			}
		}
		out := w.out.String()
		for _, id := range ids[:n] {
			if c := strings.Count(out, id+"] succeeded"); c != 1 {
				t.Errorf("%s ran %d times", id, c)
			}
		}
		sort.Slice(late, func(i, k int) bool { return late[i] < late[k] })
		t.Logf("lateness after ETA: min %v median %v max %v", late[0], late[n/2], late[n-1])
		var lastUndelayed time.Time
		for _, id := range ids[n:] {
			m := metas[id]
			if m["status"] != "SUCCESS" {
				t.Fatalf("undelayed %s: %v", id, m["status"])
			}
			if d := metaTime(t, m, "date_done"); d.After(lastUndelayed) {
				lastUndelayed = d
			}
		}
		if !lastUndelayed.Before(firstETA) {
			t.Errorf("undelayed tasks finished at %v, after the first ETA %v", lastUndelayed, firstETA)
		}
		t.Logf("undelayed tasks done %v before the first ETA", firstETA.Sub(lastUndelayed))
	})
}

// expires in the past: REVOKED, and get() raises TaskRevokedError.
func TestSemanticsExpired(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b semBroker, q string) {
		w := startGoWorker(t, semWorkerArgs(t, b, q, "")...)
		res := pyClient(t, clientSpec{Broker: b.url, Backend: backendURL(), Conf: semConf(b, q), Timeout: 10, Calls: []call{
			{Name: "tasks.add", Args: []any{1, 2}, Options: map[string]any{"expires": -10}},
			{Name: "tasks.add", Args: []any{1, 2}, Options: map[string]any{"countdown": 1, "expires": 0.5}},
		}})
		for i, o := range res {
			if o.State != "REVOKED" || o.ExcType != "TaskRevokedError" || o.ExcModule != "celery.exceptions" || o.ExcStr != "expired" {
				t.Errorf("call %d: state %s raised %s.%s(%q)", i, o.State, o.ExcModule, o.ExcType, o.ExcStr)
			}
			if b.name == "redis" && w.count("Discarding revoked task: tasks.add["+o.ID+"]") != 1 {
				t.Errorf("call %d: no discard log line", i)
			}
		}
	})
}

// tasks.retry_then_succeed(3) returns 3 with RETRY seen in between; with 11
// retries (max_retries=10) Python gets MaxRetriesExceededError.
func TestSemanticsRetries(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b semBroker, q string) {
		w := startGoWorker(t, semWorkerArgs(t, b, q, "", "--prefetch-multiplier", "1")...)
		res := pyClient(t, clientSpec{Broker: b.url, Backend: backendURL(), Conf: semConf(b, q), States: true, Calls: []call{
			{Name: "tasks.retry_then_succeed", Args: []any{3}},
			{Name: "tasks.retry_then_succeed", Args: []any{11}},
		}})
		ok := res[0]
		if ok.State != "SUCCESS" || ok.ValueRepr != "3" {
			t.Errorf("retry_then_succeed(3): %s %s %s %s", ok.State, ok.ValueRepr, ok.ExcType, ok.ExcStr)
		}
		if !contains(ok.States, "RETRY") {
			t.Errorf("retry_then_succeed(3): states seen %v, no RETRY", ok.States)
		}
		if c := w.count("Task tasks.retry_then_succeed[" + ok.ID + "] retry: Retry in 0.2s"); c != 3 {
			t.Errorf("%d retry log lines, want 3", c)
		}
		bad := res[1]
		want := fmt.Sprintf("Can't retry tasks.retry_then_succeed[%s] args:(11,) kwargs:{}", bad.ID)
		if bad.State != "FAILURE" || bad.ExcType != "MaxRetriesExceededError" || bad.ExcModule != "celery.exceptions" || bad.ExcStr != want {
			t.Errorf("retry_then_succeed(11): %s raised %s.%s(%q)", bad.State, bad.ExcModule, bad.ExcType, bad.ExcStr)
		}
		m := resultMeta(t, bad.ID)
		if m["parent_id"] != bad.ID {
			// The retried message's parent is the task itself (Celery's
			// signature_from_request for a top-level task).
			t.Errorf("final meta parent_id %v, want the task's own id", m["parent_id"])
		}
	})
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// tasks.sleep(5) with soft_time_limit=1 / time_limit=2: Python sees
// SoftTimeLimitExceeded / TimeLimitExceeded.
func TestSemanticsTimeLimits(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b semBroker, q string) {
		w := startGoWorker(t, semWorkerArgs(t, b, q, "")...)
		start := time.Now()
		res := pyClient(t, clientSpec{Broker: b.url, Backend: backendURL(), Conf: semConf(b, q), Timeout: 20, Calls: []call{
			{Name: "tasks.sleep", Args: []any{5}, Options: map[string]any{"soft_time_limit": 1}},
			{Name: "tasks.sleep", Args: []any{5}, Options: map[string]any{"time_limit": 2}},
		}})
		soft, hard := res[0], res[1]
		if soft.State != "FAILURE" || soft.ExcType != "SoftTimeLimitExceeded" || soft.ExcModule != "billiard.exceptions" {
			t.Errorf("soft: %s raised %s.%s(%q)", soft.State, soft.ExcModule, soft.ExcType, soft.ExcStr)
		}
		if hard.State != "FAILURE" || hard.ExcType != "TimeLimitExceeded" || hard.ExcModule != "billiard.exceptions" || hard.ExcStr != "TimeLimitExceeded(2,)" {
			t.Errorf("hard: %s raised %s.%s(%q)", hard.State, hard.ExcModule, hard.ExcType, hard.ExcStr)
		}
		if w.count("Soft time limit (1s) exceeded for tasks.sleep["+soft.ID+"]") != 1 ||
			w.count("Hard time limit (2s) exceeded for tasks.sleep["+hard.ID+"]") != 1 {
			t.Errorf("time limit log lines missing")
		}
		if el := time.Since(start); el > 4500*time.Millisecond+3*time.Second {
			t.Errorf("time-limited tasks took %v", el)
		}
	})
}

// rate_limit 20/s on tasks.add (task_annotations): 200 adds take at least
// 9.5 s while 200 muls sent behind them run at full speed.
func TestSemanticsRateLimit(t *testing.T) {
	forEachBroker(t, func(t *testing.T, b semBroker, q string) {
		startGoWorker(t, semWorkerArgs(t, b, q, "task_annotations:\n  tasks.add:\n    rate_limit: 20/s\n")...)
		calls := make([]call, 0, 400)
		for i := range 200 {
			calls = append(calls, call{Name: "tasks.add", Args: []any{i, 1}})
		}
		for i := range 200 {
			calls = append(calls, call{Name: "tasks.mul", Args: []any{i, 2}})
		}
		ids := pySend(t, clientSpec{Broker: b.url, Conf: semConf(b, q), Calls: calls})
		metas := waitResults(t, ids, 60*time.Second)
		span := func(ids []string) (first, last time.Time) {
			for _, id := range ids {
				m := metas[id]
				if m["status"] != "SUCCESS" {
					t.Fatalf("%s: %v %v", id, m["status"], m["result"])
				}
				d := metaTime(t, m, "date_done")
				if first.IsZero() || d.Before(first) {
					first = d
				}
				if d.After(last) {
					last = d
				}
			}
			return first, last
		}
		addFirst, addLast := span(ids[:200])
		mulFirst, mulLast := span(ids[200:])
		t.Logf("adds took %v; muls took %v, done %v after the first add", addLast.Sub(addFirst), mulLast.Sub(mulFirst), mulLast.Sub(addFirst))
		if d := addLast.Sub(addFirst); d < 9500*time.Millisecond {
			t.Errorf("200 rate-limited adds took %v, want >= 9.5 s", d)
		}
		if d := mulLast.Sub(addFirst); d > 2*time.Second {
			t.Errorf("muls finished %v after the first add: they were held up by the rate limit", d)
		}
	})
}
