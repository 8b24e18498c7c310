"""Drive real Python kombu against the Go transport's keys (interop tests).

usage: kombu_helper.py URL PREFIX COMMAND QUEUE [ARGS...]

  publish QUEUE N        publish N JSON messages {"n": i} (priority i % 10)
  consume QUEUE N        consume and ack N messages, print one JSON line each
  restore QUEUE N        run QoS.restore_visible (visibility_timeout 0.05 s)
                         until N messages were consumed (acked), print them
"""
import json
import sys
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue


def main():
    url, prefix, cmd, qname = sys.argv[1:5]
    n = int(sys.argv[5])
    opts = {'global_keyprefix': prefix}
    if cmd == 'restore':
        opts['visibility_timeout'] = 0.05
    queue = Queue(qname, Exchange(qname), routing_key=qname)
    with Connection(url, transport_options=opts) as conn:
        if cmd == 'publish':
            producer = Producer(conn.default_channel)
            for i in range(n):
                producer.publish(
                    {'n': i}, exchange='', routing_key=qname,
                    serializer='json', declare=[queue],
                    headers={'id': 'py-%d' % i, 'task': 'interop.task'},
                    priority=i % 10, correlation_id='py-%d' % i,
                )
            return
        got = []

        def on_message(body, message):
            got.append({
                'body': body,
                'headers': message.headers,
                'redelivered': bool(message.delivery_info.get('redelivered')),
                'priority': message.properties.get('priority'),
                'delivery_tag': message.delivery_tag,
                'correlation_id': message.properties.get('correlation_id'),
            })
            message.ack()

        channel = conn.channel()
        with Consumer(channel, queues=[queue], callbacks=[on_message],
                      accept=['json']):
            deadline = time.time() + 15
            while len(got) < n and time.time() < deadline:
                if cmd == 'restore':
                    channel.qos._vrestore_count = 0
                    channel.qos.restore_visible(num=None)
                try:
                    conn.drain_events(timeout=0.2)
                except Exception:  # socket.timeout
                    pass
        for g in got:
            print(json.dumps(g))
        if len(got) < n:
            sys.exit('only %d of %d messages' % (len(got), n))


if __name__ == '__main__':
    main()
