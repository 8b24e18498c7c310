"""Publish calls the way client.py does, but print their ids at once
instead of waiting for results (for tests with hundreds of calls, which
read the results from the backend themselves).

Reads the client.py spec on stdin; prints a JSON list of task ids.
"""
import json
import sys

from celery import Celery


def main():
    spec = json.load(sys.stdin)
    app = Celery("compat", broker=spec["broker"], backend=spec.get("backend"))
    app.conf.update(spec.get("conf") or {})
    ids = []
    for call in spec["calls"]:
        r = app.send_task(call["name"], args=call.get("args"),
                          kwargs=call.get("kwargs"),
                          **(call.get("options") or {}))
        ids.append(r.id)
    json.dump(ids, sys.stdout)


if __name__ == "__main__":
    main()
