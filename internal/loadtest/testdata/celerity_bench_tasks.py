"""The Python side of celerity-bench: a Celery app whose tasks.add matches
celerity's reference tasks.add (x + y), for running a Python prefork worker
against the same preloaded queue.

Configured from the environment: CELERITY_BENCH_BROKER, CELERITY_BENCH_BACKEND
(empty: results disabled).
"""
import os

from celery import Celery

app = Celery(
    "celerity_bench",
    broker=os.environ["CELERITY_BENCH_BROKER"],
    backend=os.environ.get("CELERITY_BENCH_BACKEND") or None,
)


@app.task(name="tasks.add")
def add(x, y):
    return x + y
