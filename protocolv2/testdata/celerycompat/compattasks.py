"""Tiny Celery app for protocolv2's compat test (TestCompatPythonWorker).

Broker, result backend and queue come from the environment so the Go test
can use private Redis databases and a unique queue name.
"""
import os

from celery import Celery

app = Celery(
    "compattasks",
    broker=os.environ["COMPAT_BROKER"],
    backend=os.environ["COMPAT_BACKEND"],
)
app.conf.accept_content = ["json", "msgpack"]
app.conf.task_default_queue = os.environ["COMPAT_QUEUE"]
app.conf.result_expires = 600


@app.task(name="compat.add")
def add(x, y):
    return x + y


@app.task(name="compat.echo")
def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}
