package compat_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// Canvas from Python: chains, links, groups, chords and errbacks run by the
// Go worker, read back with .get() as a Python app would.
func TestRedisCanvas(t *testing.T) {
	rc := requireRedis(t)
	q := uniq(t, "q")
	cleanupQueue(t, rc, q)
	// Follow-ups (chain steps, callbacks, chord bodies) go where the
	// producer's routing would send them: here, task_default_queue.
	cfg := filepath.Join(t.TempDir(), "celery.yaml")
	if err := os.WriteFile(cfg, []byte("task_default_queue: "+q+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startGoWorker(t, goWorkerArgs(t, q, "--config", cfg)...)
	out := runPy(t, fmt.Sprintf(`
import json
from celery import Celery, chain, chord, group, signature
from resultwait import get
app = Celery("canvas", broker=%q, backend=%q)
app.conf.update(task_default_queue=%q)
s = lambda name, *a, **kw: signature(name, args=a, kwargs=kw, app=app)
res = {}
res["chain"] = get(chain(s("tasks.add", 1, 2), s("tasks.add", 3), s("tasks.mul", 10))(), timeout=30)
res["chain_immutable"] = get(chain(s("tasks.add", 1, 2), s("tasks.mul", 5, 5).set(immutable=True))(), timeout=30)
cb = s("tasks.mul", 10)
cb.freeze()
parent = app.send_task("tasks.add", args=(2, 3), link=cb)
res["link_parent"] = get(parent, timeout=30)
res["link"] = get(app.AsyncResult(cb.id), timeout=30)
res["group"] = get(group(s("tasks.add", i, i) for i in range(5))(), timeout=30)
res["chord"] = get(chord(s("tasks.add", i, i) for i in range(5))(s("tasks.xsum")), timeout=30)
res["chain_group"] = get(chain(s("tasks.add", 1, 1), group(s("tasks.add", 10), s("tasks.mul", 2)), s("tasks.xsum"))(), timeout=30)
eb = s("tasks.echo")
eb.freeze()
failed = app.send_task("tasks.fail", args=("boom",), link_error=eb)
try:
    get(failed, timeout=30)
except ValueError as e:
    res["failed"] = str(e)
res["errback"] = get(app.AsyncResult(eb.id), timeout=30)
res["errback_expected"] = [[failed.id], {}]
bad = chord([s("tasks.add", 1, 1), s("tasks.fail", "bad")])(s("tasks.xsum"))
try:
    # Python raises the header's own error when following parents; the
    # body itself carries Celery's ChordError.
    get(bad, timeout=30, follow_parents=False)
except Exception as e:
    res["chord_error"] = [type(e).__name__, str(e).split(" raised ")[-1], bad.state]
print(json.dumps(res))
`, brokerURL(), backendURL(), q), nil)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]any{
		"chain":           60.0,
		"chain_immutable": 25.0,
		"link_parent":     5.0,
		"link":            50.0,
		"group":           []any{0.0, 2.0, 4.0, 6.0, 8.0},
		"chord":           20.0,
		"chain_group":     16.0,
		"failed":          "boom",
		"chord_error":     []any{"ChordError", "ValueError('bad')", "FAILURE"},
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s: got %v, want %v", k, got[k], w)
		}
	}
	if !reflect.DeepEqual(got["errback"], got["errback_expected"]) {
		t.Errorf("errback got %v, want %v", got["errback"], got["errback_expected"])
	}
}
