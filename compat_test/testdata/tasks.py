"""Python versions of celerity's reference tasks, for the Python worker that
shares queues with the Go worker in the mixed-queue tests."""
import os
import time

from celery import Celery

app = Celery("tasks", broker=os.environ["COMPAT_BROKER"], backend=os.environ.get("COMPAT_BACKEND"))
app.conf.update(
    task_acks_late=os.environ.get("COMPAT_ACKS_LATE") == "1",
    broker_transport_options={"visibility_timeout": float(os.environ.get("COMPAT_VISIBILITY", "3600"))},
    worker_hijack_root_logger=False,
)


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@app.task(name="tasks.fail")
def fail(message):
    raise ValueError(message)
