"""The demo's Python producer: the seed tutorial's calls, made by real
Python Celery against the Go worker."""
import sys

from celery import Celery
from kombu import Exchange, Queue

broker, backend, default_queue = sys.argv[1], sys.argv[2], sys.argv[3]
app = Celery("demo", broker=broker, backend=backend)
app.conf.update(
    task_default_queue=default_queue,
    task_queues=(
        Queue(default_queue),
        Queue("for_task1", Exchange("for_task1"), routing_key="task_a"),
        Queue("for_task2", Exchange("for_task2"), routing_key="task_b"),
    ),
    task_routes={
        "app1.tasks1.deal1": {"queue": "for_task1", "routing_key": "task_a"},
        "app1.tasks2.deal2": {"queue": "for_task2", "routing_key": "task_b"},
    },
)

calls = [
    ("tasks.add", (6, 6)),
    ("app1.tasks1.deal1", ("hello from Python",)),
    ("app1.tasks2.deal2", ("nobody consumes for_task2",)),
    ("tasks.fail", ("a Go task raising ValueError",)),
]
results = []
for name, args in calls:
    r = app.send_task(name, args=args)
    print(f"python sent   {name}{args!r} -> id {r.id}", flush=True)
    results.append((name, args, r))
for name, args, r in results:
    if name == "app1.tasks2.deal2":
        print(f"python result {name}{args!r}: state {r.state} (for_task2 is not consumed by this worker)", flush=True)
        continue
    try:
        print(f"python result {name}{args!r} = {r.get(timeout=20)!r} (state {r.state})", flush=True)
    except Exception as exc:  # noqa: BLE001 - the demo shows what Python raised
        print(f"python result {name}{args!r} raised {type(exc).__name__}({exc}) (state {r.state})", flush=True)
