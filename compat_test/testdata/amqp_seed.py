"""The seed tutorial's producer on RabbitMQ, for celerity's compat tests.

  amqp_seed.py publish            sends deal1 and deal2, prints their ids
  amqp_seed.py collect ID1 ID2    waits for deal1, prints its value and
                                  deal2's state

Broker and result backend come from COMPAT_BROKER / COMPAT_BACKEND. The
queues and routes are the seed's CELERY_QUEUES / CELERY_ROUTES.
"""
import json
import os
import sys

from celery import Celery
from kombu import Exchange, Queue

app = Celery("seed", broker=os.environ["COMPAT_BROKER"], backend=os.environ["COMPAT_BACKEND"])
app.conf.update(
    # confirms: a publish-and-exit must not lose its messages
    BROKER_TRANSPORT_OPTIONS={"confirm_publish": True},
    CELERY_QUEUES=(
        Queue("for_task1", Exchange("for_task1"), routing_key="task_a"),
        Queue("for_task2", Exchange("for_task2"), routing_key="task_b"),
    ),
    CELERY_ROUTES={
        "app1.tasks1.deal1": {"queue": "for_task1", "routing_key": "task_a"},
        "app1.tasks2.deal2": {"queue": "for_task2", "routing_key": "task_b"},
    },
)

if sys.argv[1] == "publish":
    r1 = app.send_task("app1.tasks1.deal1", args=("hello",))
    r2 = app.send_task("app1.tasks2.deal2", args=("world",))
    print(json.dumps({"deal1": r1.id, "deal2": r2.id}))
else:
    r1, r2 = app.AsyncResult(sys.argv[2]), app.AsyncResult(sys.argv[3])
    v = r1.get(timeout=30)
    print(json.dumps({"deal1": v, "deal2_state": r2.state}))
