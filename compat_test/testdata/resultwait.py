"""Result waits for the compat tests that say, when they time out, what
the result backend holds for the task: a result that is stored but was
never seen points at the client, a missing one at the worker."""

from celery.exceptions import TimeoutError


def get(result, **kwargs):
    """result.get(**kwargs); a timeout names the task and what is stored."""
    try:
        return result.get(**kwargs)
    except TimeoutError as e:
        raise TimeoutError(f"{e} (task {result.id}: {stored(result)})") from e


def stored(result):
    """What a key-value result backend holds for result, in words (for a
    group, for each of its members)."""
    members = getattr(result, "results", None)
    if members is not None:
        return "; ".join(f"{r.id}: {stored(r)}" for r in members)
    backend = result.backend
    key_for = getattr(backend, "get_key_for_task", None)
    client = getattr(backend, "client", None)
    if key_for is None or client is None:
        return "the backend keeps no key to read"
    value = client.get(key_for(result.id))
    if value is None:
        return "no result stored"
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return "stored: " + value[:300]
