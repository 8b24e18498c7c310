"""Python Celery client for celerity-bench.

  bench_client.py latency BROKER BACKEND QUEUE N [raw]
      N sequential send_task("tasks.add") + get() round trips (after a short
      warm-up); prints {"n", "p50_ms", "p99_ms", "mean_ms", "max_ms",
      "stale_drained", "raw"} as JSON. Between two round trips, outside the timed
      part, the replies waiting on the result consumer's pub/sub connection
      are read (see drain_stale); "raw" leaves them for the next get().
  bench_client.py produce BROKER BACKEND QUEUE IDFILE
      publishes one tasks.add(i, i + 1) per line of IDFILE (the task id),
      as an application would; prints {"sent": n}.
"""
import json
import math
import sys
import time

from celery import Celery


def app_for(broker, backend):
    return Celery("celerity_bench_client", broker=broker, backend=backend or None)


def drain_stale(app):
    """Reads what waits on the result consumer's pub/sub connection.

    Celery's Redis result consumer subscribes to a task's channel when the
    task is sent, and get() first reads the result key. When the worker
    has already stored the result, get() returns without reading the
    channel, so the result's PUBLISH stays unread on the connection, and so
    do the confirmations of the unsubscribes. The next get() that does wait
    on the channel reads that backlog one message per call, answering each
    stale result with another UNSUBSCRIBE round trip: one round trip pays
    for every earlier one that was answered quickly, and the faster the
    worker, the longer the backlog. Each sample should time its own round
    trip, so the backlog is handled here, the way the consumer would
    (on_state_change), between samples. Returns how many replies it read.
    """
    rc = getattr(app.backend, "result_consumer", None)
    ps = getattr(rc, "_pubsub", None)
    n = 0
    while ps is not None and n < 1000000:
        resp = ps.parse_response(block=False, timeout=0)
        if resp is None:
            break
        n += 1
        m = ps.handle_message(resp, ignore_subscribe_messages=True)
        if m and m["type"] == "message":
            rc.on_state_change(rc._decode_result(m["data"]), m)
    return n


def latency(app, queue, n, raw=False):
    warm = min(20, max(1, n // 10))
    samples = []
    drained = 0
    for i in range(warm + n):
        t0 = time.perf_counter()
        r = app.send_task("tasks.add", args=(i, i), queue=queue)
        v = r.get(timeout=30)
        dt = time.perf_counter() - t0
        if v != 2 * i:
            raise SystemExit("tasks.add(%d, %d) returned %r" % (i, i, v))
        r.forget()
        if not raw:
            drained += drain_stale(app)
        if i >= warm:
            samples.append(dt * 1000.0)
    samples.sort()

    def pct(p):
        # nearest rank
        k = max(1, math.ceil(p / 100.0 * len(samples)))
        return samples[k - 1]

    return {
        "n": len(samples),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "mean_ms": sum(samples) / len(samples),
        "max_ms": samples[-1],
        "stale_drained": drained,
        "raw": raw,
    }


def produce(app, queue, idfile):
    with open(idfile) as f:
        ids = [line.strip() for line in f if line.strip()]
    with app.producer_or_acquire() as producer:
        for i, tid in enumerate(ids):
            app.send_task("tasks.add", args=(i, i + 1), queue=queue, task_id=tid, producer=producer)
    return {"sent": len(ids)}


def main():
    cmd, broker, backend, queue, arg = sys.argv[1:6]
    app = app_for(broker, backend)
    if cmd == "latency":
        out = latency(app, queue, int(arg), raw=sys.argv[6:7] == ["raw"])
    elif cmd == "produce":
        out = produce(app, queue, arg)
    else:
        raise SystemExit("unknown command %r" % cmd)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
