"""Send one task with Celery 5.2's client to a queue over AMQP.

usage: send_task.py BROKER_URL QUEUE TASK_ID REPLY_TO
"""
import sys

from celery import Celery

url, queue, task_id, reply_to = sys.argv[1:5]
app = Celery("interop", broker=url)
app.conf.task_create_missing_queues = True
app.send_task(
    "wiretasks.add", args=(2, 3), kwargs={"z": None}, queue=queue,
    task_id=task_id, reply_to=reply_to, priority=3, expires=120,
    headers={"x-custom": "v"},
)
print("sent", task_id)
