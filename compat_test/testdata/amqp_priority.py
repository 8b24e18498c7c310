"""Priority producer for celerity's compat tests (RabbitMQ).

  amqp_priority.py publish       declares queue "prio" with x-max-priority 10,
                                 sends five tasks.add with priority 1, then
                                 five with priority 9; prints the ids
  amqp_priority.py collect IDS   waits for each result, prints "ok" per id
                                 whose value is right

Broker and result backend come from COMPAT_BROKER / COMPAT_BACKEND.
"""
import json
import os
import sys

from celery import Celery
from kombu import Exchange, Queue

app = Celery("prio", broker=os.environ["COMPAT_BROKER"], backend=os.environ["COMPAT_BACKEND"])
app.conf.update(
    # confirms: a publish-and-exit must not lose its messages
    broker_transport_options={"confirm_publish": True},
    task_queues=(Queue("prio", Exchange("prio"), routing_key="prio", queue_arguments={"x-max-priority": 10}),),
    task_default_queue="prio",
)

if sys.argv[1] == "publish":
    low = [app.send_task("tasks.add", args=(i, 0), priority=1).id for i in range(5)]
    high = [app.send_task("tasks.add", args=(i, 100), priority=9).id for i in range(5)]
    print(json.dumps({"low": low, "high": high}))
else:
    for task_id in sys.argv[2:]:
        r = app.AsyncResult(task_id)
        v = r.get(timeout=30)
        print("ok" if isinstance(v, int) and r.state == "SUCCESS" else "bad %r %s" % (v, r.state))
