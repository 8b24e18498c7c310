"""Bulk producer for celerity's compat tests: reads a JSON list of task ids
from the file named on the command line and sends tasks.sleep(0.01) with each
id to the default queue of COMPAT_BROKER, then prints "published N".

Publisher confirms are on: without them py-amqp's last messages can be
lost when the process exits while RabbitMQ has not read them yet.
"""
import json
import os
import sys

from celery import Celery

app = Celery("bulk", broker=os.environ["COMPAT_BROKER"])
app.conf.broker_transport_options = {"confirm_publish": True}
with open(sys.argv[1]) as f:
    ids = json.load(f)
with app.producer_or_acquire() as producer:
    for task_id in ids:
        app.send_task("tasks.sleep", args=(0.01,), task_id=task_id, producer=producer)
print("published %d" % len(ids), flush=True)
