#!/usr/bin/python3
"""Regenerate Redis task-envelope fixtures with the Celery installed for
/usr/bin/python3 (Debian: celery 5.2.6 / kombu 5.2.4).

For each case the Celery client publishes one task with no worker running
to a private queue (random name) in the chosen Redis DB, the script reads
the list item back with LRANGE, writes it to
<outdir>/redis-<celery major.minor>-task-<case>.json (the exact bytes, one
line), and deletes the keys it created (the queue list and its
_kombu.binding.* set). Nothing else in Redis is touched.

Usage:
  /usr/bin/python3 testdata/gen/regen_captures.py OUTDIR [--redis-db N]
      [--redis-url redis://127.0.0.1:6379] [--only CASE ...]

The files differ from testdata/captures only where Celery is
non-deterministic (delivery_tag, reply_to, origin pid, eta/expires times,
generated ids in chains) and in the queue name / routing key.
"""
import argparse
import os
import sys
import uuid
from datetime import date, datetime, time, timezone
from decimal import Decimal

import celery
import redis
from celery import Celery, chain, group

FIXED_ID = '11111111-1111-4111-8111-111111111111'


def cases(app):
    """name -> function publishing exactly one message to the queue."""
    sig = app.signature
    return {
        'basic': lambda: app.send_task('wiretasks.add', args=(2, 3), task_id=FIXED_ID),
        'countdown-expires': lambda: app.send_task(
            'wiretasks.add', kwargs={'x': 1, 'y': 2}, countdown=30, expires=120, task_id=FIXED_ID),
        'json-special-types': lambda: app.send_task('wiretasks.echo', args=(
            datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=timezone.utc), datetime(2024, 1, 2, 3, 4, 5),
            date(2024, 1, 2), time(3, 4, 5), Decimal('1.10'),
            uuid.UUID('12345678-1234-5678-1234-567812345678')), task_id=FIXED_ID),
        'msgpack': lambda: app.send_task('wiretasks.add', args=(1, 2), serializer='msgpack', task_id=FIXED_ID),
        'zlib': lambda: app.send_task('wiretasks.add', args=(1, 2), compression='zlib', task_id=FIXED_ID),
        'send_task-options': lambda: app.send_task(
            'wiretasks.add', args=[5, 6], shadow='add-shadow', time_limit=30, soft_time_limit=20,
            headers={'x-custom': 'v'}, ignore_result=True, task_id=FIXED_ID),
        'link-errback': lambda: app.send_task(
            'wiretasks.add', args=(1, 1), task_id=FIXED_ID, link=sig('wiretasks.mul', args=(10,)),
            link_error=[sig('wiretasks.on_err_old'), sig('wiretasks.on_err_new')]),
        'chain': lambda: chain(sig('wiretasks.add', args=(1, 2)), sig('wiretasks.add', args=(3,)),
                               sig('wiretasks.mul', args=(5, 5), immutable=True),
                               sig('wiretasks.xsum')).apply_async(),
        'group-member': lambda: group(sig('wiretasks.add', args=(2, 2))).apply_async(),
        'protocol-v1': lambda: app.send_task('wiretasks.add', args=(1, 2), countdown=30, task_id=FIXED_ID,
                                             link=sig('wiretasks.mul', args=(3,))),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('outdir')
    ap.add_argument('--redis-url', default='redis://127.0.0.1:6379')
    ap.add_argument('--redis-db', type=int, default=0)
    ap.add_argument('--only', nargs='*')
    opts = ap.parse_args()

    ver = '.'.join(celery.__version__.split('.')[:2])
    queue = 'regen_%s' % uuid.uuid4().hex[:12]
    broker = '%s/%d' % (opts.redis_url.rstrip('/'), opts.redis_db)
    r = redis.Redis.from_url(broker)
    os.makedirs(opts.outdir, exist_ok=True)
    own_keys = [queue, '_kombu.binding.' + queue]
    written = []
    try:
        for name, publish in cases_for(opts, broker, queue).items():
            r.delete(queue)
            publish()
            items = r.lrange(queue, 0, -1)
            if len(items) != 1:
                raise SystemExit('%s: expected 1 message in %s, found %d' % (name, queue, len(items)))
            path = os.path.join(opts.outdir, 'redis-%s-task-%s.json' % (ver, name))
            with open(path, 'wb') as f:
                f.write(items[0])
            written.append(path)
    finally:
        r.delete(*own_keys)
    for p in written:
        print(p)


def cases_for(opts, broker, queue):
    out = {}
    for protocol in (2, 1):
        app = Celery('wiretasks', broker=broker, set_as_current=False)
        app.conf.task_default_queue = queue
        app.conf.task_protocol = protocol
        for name, fn in cases(app).items():
            if (name == 'protocol-v1') != (protocol == 1):
                continue
            if opts.only and name not in opts.only:
                continue
            out[name] = fn
    return out


if __name__ == '__main__':
    sys.exit(main())
