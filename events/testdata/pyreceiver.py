"""Receive celerity events with Celery's own Receiver and State (test helper).

usage: pyreceiver.py <broker_url> <global_keyprefix or ""> <hostname> <task_id>
Prints "SUBSCRIBED" once a probe-ping event arrived, "STATE <json>" once
worker-online, a heartbeat, task-received and task-succeeded were seen,
and the full report as JSON after worker-offline.
"""
import json
import sys
import time

from celery import Celery
from celery.events.state import State

url, prefix, host, task_id = sys.argv[1:5]
app = Celery('evtest', broker=url)
if prefix:
    app.conf.broker_transport_options = {'global_keyprefix': prefix}

state = State()
seen = []
flags = {'subscribed': False, 'state': False}


class Done(Exception):
    pass


def on_event(ev):
    if ev.get('type') == 'probe-ping':
        if not flags['subscribed']:
            flags['subscribed'] = True
            print('SUBSCRIBED', flush=True)
        return
    if ev.get('hostname') != host:
        return
    seen.append(ev)
    state.event(ev)
    types = {e['type'] for e in seen}
    if not flags['state'] and {'worker-online', 'worker-heartbeat', 'task-received', 'task-succeeded', 'task-failed'} <= types:
        flags['state'] = True
        w = state.workers.get(host)
        t = state.tasks.get(task_id)
        snap = {
            'worker_alive': bool(w and w.alive),
            'worker_active': w.active if w else None,
            'worker_processed': w.processed if w else None,
            'worker_loadavg': w.loadavg if w else None,
            'task_state': t.state if t else None,
            'task_name': t.name if t else None,
            'task_args': t.args if t else None,
            'task_kwargs': t.kwargs if t else None,
            'task_result': t.result if t else None,
            'task_runtime': t.runtime if t else None,
            'task_worker': t.worker.hostname if t and t.worker else None,
            'failed_state': state.tasks['fail-' + task_id].state if ('fail-' + task_id) in state.tasks else None,
            'failed_exception': state.tasks['fail-' + task_id].exception if ('fail-' + task_id) in state.tasks else None,
        }
        print('STATE ' + json.dumps(snap), flush=True)
    if ev['type'] == 'worker-offline':
        raise Done()


with app.connection_for_read() as conn:
    recv = app.events.Receiver(conn, handlers={'*': on_event})
    deadline = time.time() + 60
    try:
        while time.time() < deadline:
            try:
                recv.capture(limit=None, timeout=1, wakeup=False)
            except Exception as exc:  # socket.timeout between events
                if isinstance(exc, Done):
                    raise
    except Done:
        pass
w = state.workers.get(host)
print('REPORT ' + json.dumps({'events': seen, 'alive_after_offline': bool(w and w.alive)}), flush=True)
