"""Drive a Celery deployment the way a Python app does, for celerity's
compatibility tests.

Reads one JSON spec on stdin:
  {"broker": url, "backend": url, "conf": {celery settings},
   "calls": [{"name": task, "args": [...], "kwargs": {...}, "options": {...}}],
   "timeout": seconds, "states": bool}
publishes every call with send_task, then waits for each result and prints
one JSON list with, per call: id, state, value (JSON) / value_repr /
value_type, or exc_type / exc_module / exc_str, and traceback.
With "states", records the distinct states seen while polling.
"""
import json
import sys
import time

from celery import Celery


def main():
    spec = json.load(sys.stdin)
    app = Celery("compat", broker=spec["broker"], backend=spec.get("backend"))
    app.conf.update(spec.get("conf") or {})
    timeout = spec.get("timeout", 30)
    results = []
    for call in spec["calls"]:
        results.append(app.send_task(call["name"], args=call.get("args"),
                                     kwargs=call.get("kwargs"),
                                     **(call.get("options") or {})))
    seen = {}
    if spec.get("states"):
        deadline = time.time() + timeout
        pending = list(results)
        while pending and time.time() < deadline:
            for r in list(pending):
                st = r.state
                s = seen.setdefault(r.id, [])
                if not s or s[-1] != st:
                    s.append(st)
                if st in ("SUCCESS", "FAILURE", "REVOKED"):
                    pending.remove(r)
            time.sleep(0.01)
    out = []
    for r in results:
        entry = {"id": r.id}
        try:
            v = r.get(timeout=timeout, propagate=True)
            entry["value_repr"] = repr(v)
            entry["value_type"] = type(v).__name__
            try:
                entry["value"] = json.loads(json.dumps(v))
            except (TypeError, ValueError):
                entry["value"] = None
        except Exception as e:  # noqa: BLE001 - we report what Python raised
            entry["exc_type"] = type(e).__name__
            entry["exc_module"] = type(e).__module__
            entry["exc_str"] = str(e)
        entry["state"] = r.state
        entry["traceback"] = r.traceback
        if r.id in seen:
            entry["states"] = seen[r.id]
        out.append(entry)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
