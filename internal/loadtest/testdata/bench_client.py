"""Python Celery client for celerity-bench.

  bench_client.py latency BROKER BACKEND QUEUE N
      N sequential send_task("tasks.add") + get() round trips (after a short
      warm-up); prints {"n", "p50_ms", "p99_ms", "mean_ms", "max_ms"} as JSON.
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


def latency(app, queue, n):
    warm = min(20, max(1, n // 10))
    samples = []
    for i in range(warm + n):
        t0 = time.perf_counter()
        r = app.send_task("tasks.add", args=(i, i), queue=queue)
        v = r.get(timeout=30)
        dt = time.perf_counter() - t0
        if v != 2 * i:
            raise SystemExit("tasks.add(%d, %d) returned %r" % (i, i, v))
        r.forget()
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
        out = latency(app, queue, int(arg))
    elif cmd == "produce":
        out = produce(app, queue, arg)
    else:
        raise SystemExit("unknown command %r" % cmd)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
