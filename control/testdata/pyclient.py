"""Drive a celerity control node with Celery's own client (test helper).

usage: pyclient.py <broker_url> <global_keyprefix or ""> <nodename>
Prints one JSON document with the replies.
"""
import json
import sys

from celery import Celery

url, prefix, node = sys.argv[1], sys.argv[2], sys.argv[3]
app = Celery('ctltest', broker=url)
if prefix:
    app.conf.broker_transport_options = {'global_keyprefix': prefix}

out = {}
out['ping'] = app.control.ping(timeout=2)
insp = app.control.inspect(destination=[node], timeout=2)
out['stats'] = insp.stats()
out['registered'] = insp.registered()
out['active'] = insp.active()
out['active_safe'] = insp.active(safe=True)
out['reserved'] = insp.reserved()
out['scheduled'] = insp.scheduled()
out['active_queues'] = insp.active_queues()
out['conf'] = insp.conf()
out['query_task'] = insp.query_task(['act-1', 'nope'])
out['clock'] = insp.clock()
app.control.revoke('rev-1')  # cast: no reply
out['revoke_reply'] = app.control.revoke(['rev-2', 'rev-3'], reply=True, destination=[node], timeout=2)
out['terminate_reply'] = app.control.revoke('act-1', terminate=True, signal='SIGKILL', reply=True, destination=[node], timeout=2)
out['revoked'] = insp.revoked()
out['rate_limit'] = app.control.rate_limit('tasks.add', '10/m', reply=True, destination=[node], timeout=2)
out['rate_limit_unknown'] = app.control.rate_limit('tasks.nope', '10/m', reply=True, destination=[node], timeout=2)
out['rate_limit_bad'] = app.control.rate_limit('tasks.add', 'abc/m', reply=True, destination=[node], timeout=2)
out['unknown'] = app.control.broadcast('no_such_command', reply=True, destination=[node], timeout=2)
out['other_dest'] = app.control.ping(destination=['nobody@nowhere'], timeout=1)
out['glob'] = app.control.broadcast('ping', reply=True, pattern=node.split('@')[0] + '@*', matcher='glob', timeout=2)
out['glob_miss'] = app.control.broadcast('ping', reply=True, pattern='zzz*', matcher='glob', timeout=1)
out['enable_events'] = app.control.enable_events(reply=True, destination=[node], timeout=2)
out['hello'] = app.control.broadcast('hello', arguments={'from_node': 'py@x', 'revoked': {'mingle-1': [1.5, 'mingle-1']}}, reply=True, destination=[node], timeout=2)
out['pool_grow'] = app.control.pool_grow(1, reply=True, destination=[node], timeout=2)
# Celery's receiving side of mingle: must accept our hello reply.
from celery.worker import state as wstate
for r in out['hello']:
    for v in r.values():
        wstate.revoked.update(v['revoked'])
out['mingle_merged'] = sorted(wstate.revoked)
app.control.shutdown(destination=[node])
print(json.dumps(out))
