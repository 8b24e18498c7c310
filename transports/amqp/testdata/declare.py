"""Declare Queue(name, Exchange(name), routing_key=key) with kombu, as Celery does.

usage: declare.py BROKER_URL QUEUE ROUTING_KEY MAX_PRIORITY(0=unset) [QUEUE_TYPE]
Exits non-zero (with the broker error) when the declaration is refused,
for example PRECONDITION_FAILED because of inequivalent arguments.
"""
import sys

from kombu import Connection, Exchange, Queue

url, name, key, prio = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
qtype = sys.argv[5] if len(sys.argv) > 5 else ""
kwargs = {}
if prio:
    kwargs["max_priority"] = prio
if qtype:
    kwargs["queue_arguments"] = {"x-queue-type": qtype}
with Connection(url) as conn:
    q = Queue(name, Exchange(name), routing_key=key, **kwargs)
    q(conn.default_channel).declare()
print("declared", name)
