#!/usr/bin/python3
"""Interop helper for kombu/roundtrip_test.go.

Reads JSON requests, one per line, on stdin and answers one JSON line each:

  {"op": "decode", "content_type": CT, "content_encoding": CE,
   "compression": HEADER-or-null, "body_b64": B64}
      -> {"ok": true, "repr": repr(value)} after kombu decompress + loads
         (accepting every content type), or {"ok": false, "error": ...}

  {"op": "encode", "serializer": NAME, "compression": NAME-or-null,
   "expr": PYTHON-EXPRESSION}
      -> {"ok": true, "content_type": ..., "content_encoding": ...,
          "compression": HEADER-or-null, "body_b64": ...}
         The expression is evaluated with datetime, date, time, timezone,
         timedelta, Decimal and UUID in scope (trusted test input only).

Uses whatever kombu /usr/bin/python3 imports (Debian: kombu 5.2.4).
"""
import base64
import json
import sys
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from uuid import UUID

from kombu import compression, serialization

ACCEPT = {'application/json', 'application/x-msgpack', 'application/x-yaml',
          'application/data', 'application/text', 'text/plain'}
SCOPE = {'datetime': datetime, 'date': date, 'time': time,
         'timezone': timezone, 'timedelta': timedelta,
         'Decimal': Decimal, 'UUID': UUID}


def handle(req):
    op = req['op']
    if op == 'decode':
        body = base64.b64decode(req['body_b64'])
        if req.get('compression'):
            body = compression.decompress(body, req['compression'])
        value = serialization.loads(body, req['content_type'],
                                    req['content_encoding'], accept=ACCEPT)
        return {'ok': True, 'repr': repr(value)}
    if op == 'encode':
        value = eval(req['expr'], dict(SCOPE))  # test-controlled input
        ctype, cenc, body = serialization.dumps(value, req['serializer'])
        if isinstance(body, str):
            body = body.encode(cenc or 'utf-8')
        header = None
        if req.get('compression'):
            body, header = compression.compress(body, req['compression'])
        return {'ok': True, 'content_type': ctype, 'content_encoding': cenc,
                'compression': header,
                'body_b64': base64.b64encode(body).decode('ascii')}
    if op == 'version':
        import kombu
        return {'ok': True, 'repr': kombu.__version__}
    raise ValueError('unknown op %r' % (op,))


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            out = handle(json.loads(line))
        except Exception as exc:  # report, keep serving
            out = {'ok': False, 'error': '%s: %s' % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
