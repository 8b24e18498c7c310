"""Celery 5.2 client with result_backend='rpc://'.

usage: rpc_client.py BROKER_URL QUEUE SUCCESS_ID FAILURE_ID
Sends two tasks to QUEUE, prints "SENT <reply_to>", then waits for both
results and prints "RESULT <json>" and "RAISED <type> <args json>".
"""
import json
import sys

from celery import Celery

url, queue, ok_id, fail_id = sys.argv[1:5]
app = Celery("interop", broker=url, backend="rpc://")
r1 = app.send_task("wiretasks.add", args=(2, 3), queue=queue, task_id=ok_id)
r2 = app.send_task("wiretasks.fail", args=("bad value",), queue=queue, task_id=fail_id)
print("SENT", app.backend.oid, flush=True)
print("RESULT", json.dumps(r1.get(timeout=30)), flush=True)
try:
    r2.get(timeout=30)
    print("NO EXCEPTION", flush=True)
except Exception as exc:  # noqa: BLE001 - report whatever was raised
    print("RAISED", type(exc).__name__, json.dumps(list(exc.args)), flush=True)
print("STATE", r2.state, flush=True)
