"""Read Celery task results the way a Python client does and print JSON.

Used by the Go compatibility tests (python_test.go) with Debian's Celery:

    pyresult.py read <redis-url> <task-id>...
        One JSON object {task_id: report}: state, and for ready states the
        value of get(propagate=False), the exception get() raises, the
        traceback and date_done; for other states AsyncResult.info.

    pyresult.py wait <redis-url> <task-id> <timeout>
        Calls get(timeout=...) on a task that has no result yet. Prints the
        line "initial-get-done" once the client has subscribed and done its
        single initial GET (after that only a PUBLISH can wake it), then one
        JSON object with the value and the elapsed seconds.
"""
import json
import sys
import time

from celery import Celery
from celery.backends.redis import ResultConsumer
from celery.result import AsyncResult


def describe(value):
    if isinstance(value, BaseException):
        return {
            "type": type(value).__name__,
            "module": type(value).__module__,
            "args": [repr(a) for a in value.args],
            "repr": repr(value),
        }
    return {"type": type(value).__name__, "repr": repr(value)}


def read(app, task_ids):
    out = {}
    for tid in task_ids:
        res = AsyncResult(tid, app=app)
        report = {"state": res.state}
        if res.ready():
            report["value"] = describe(res.get(timeout=5, propagate=False))
            report["traceback"] = res.traceback
            report["date_done"] = None if res.date_done is None else res.date_done.isoformat()
            try:
                res.get(timeout=5)
                report["raised"] = None
            except Exception as exc:  # the re-created task exception
                report["raised"] = describe(exc)
        else:
            report["info"] = describe(res.info)
        out[tid] = report
    print(json.dumps(out))


def wait(app, tid, timeout):
    original = ResultConsumer.on_wait_for_pending

    def on_wait_for_pending(self, result, **kwargs):
        original(self, result, **kwargs)
        print("initial-get-done", flush=True)

    ResultConsumer.on_wait_for_pending = on_wait_for_pending
    res = AsyncResult(tid, app=app)
    start = time.monotonic()
    value = res.get(timeout=timeout)
    print(json.dumps({"value": describe(value), "elapsed": time.monotonic() - start}), flush=True)


def main():
    mode, url = sys.argv[1], sys.argv[2]
    app = Celery("celerity_compat", backend=url)
    if mode == "read":
        read(app, sys.argv[3:])
    elif mode == "wait":
        wait(app, sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
