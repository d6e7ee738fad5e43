"""Workarounds for client bugs of the Celery and kombu versions that Debian ships (Celery 5.2.6,
kombu 5.2.4, redis-py 4.3.4 in bookworm).

Each one names its upstream issue and tests the installed code for the bug itself rather than a
version number, so it is skipped wherever the fix is present (a backport, a newer release).
ACTIVE lists the ones that applied in this process.
"""

import functools
import logging

ACTIVE = []

log = logging.getLogger("emailclient_broker")


def sentinel_backend_drops_username():
    """Whether Celery's SentinelBackend drops the ACL user name of its sentinel:// URLs.

    celery/celery#10013 (reported as celery#6301, fixed 2025-12): the result backend kept the URL's
    password but not its user name, so the primary saw AUTH for Redis's `default` user (disabled
    here) and answered WRONGPASS.  Where it is dropped, celery_settings passes the user explicitly
    as `redis_username`, which every Celery >= 5.1 honours.
    """
    try:
        from celery.backends.redis import SentinelBackend

        probe = SentinelBackend.__new__(SentinelBackend)
        defaults = {"host": "localhost", "port": 26379, "db": 0, "password": None}  # as RedisBackend passes them
        params = probe._params_from_url("sentinel://probe-user:pw@127.0.0.1:26379/0", defaults)
    except Exception:  # an internal API that moved: pass the user name, which is always safe
        return True
    dropped = params.get("username") != "probe-user"
    if dropped and "celery#10013" not in ACTIVE:
        ACTIVE.append("celery#10013")
    return dropped


def redis_backend_retries():
    """Let `result_backend_always_retry` cover Redis connection errors.

    celery/celery#9613 (fixed by celery#9614 in Celery 5.5): RedisBackend never declared an error
    safe to retry, so a task that finished while Redis restarted or failed over was marked FAILURE
    with ConnectionError, however many retries were configured.  Skipped where RedisBackend defines
    exception_safe_to_retry itself.
    """
    from celery.backends.base import Backend
    from celery.backends.redis import RedisBackend

    if RedisBackend.exception_safe_to_retry is not Backend.exception_safe_to_retry:
        return

    def exception_safe_to_retry(self, exc):
        return isinstance(exc, self.connection_errors)

    RedisBackend.exception_safe_to_retry = exception_safe_to_retry
    ACTIVE.append("celery#9613")


# Messages taken off a queue whose record in the unacknowledged hash could not be written (see
# redis_unacked_record_kept): [(payload, exchange, routing key)], put back by the next poll.
_UNRECORDED = []


def redis_unacked_record_kept():
    """Put a message back on its queue when its unacknowledged record could not be written.

    celery/kombu#305 (open): kombu's Redis transport takes a message off the queue with BRPOP and
    records it in the unacknowledged hash in a second round trip (ZADD+HSET, on another connection).
    When the primary goes away between the two (a failover, a host stop: Redis pauses writes while it
    waits for its replicas, then exits), the record's write fails, the worker drops the message it
    was handed, and no copy is left in Redis: the task is lost (measured: one task per failover in
    most runs).  Here the failed record keeps the message in memory, and the worker's next poll, on
    the new primary, pushes it back to the head of its queue (marked redelivered), so it runs later
    (at least once: if the pop itself never reached the new primary, the task runs twice).  Skipped
    where kombu's Redis QoS has no append of that shape.
    """
    try:
        from kombu.transport import redis as kredis
    except ImportError:  # no Redis transport: nothing to patch
        return
    QoS, Channel = kredis.QoS, kredis.Channel
    if getattr(QoS.append, "_emailclient_kept", False) or not hasattr(Channel, "_brpop_start"):
        return
    append, brpop_start = QoS.append, Channel._brpop_start

    @functools.wraps(append)
    def kept_append(self, message, delivery_tag):
        try:
            append(self, message, delivery_tag)
        except self.channel.connection_errors:
            delivery = message.delivery_info
            _UNRECORDED.append((message._raw, delivery["exchange"], delivery["routing_key"]))
            log.warning("kombu#305: task %s was taken from Redis but its unacknowledged record was not "
                        "written (connection lost); it goes back on its queue on the next connection",
                        _task_id(message._raw))
            raise

    @functools.wraps(brpop_start)  # its signature too: settings reads BRPOP's default timeout from it
    def restoring_brpop_start(self, *args, **kwargs):
        if _UNRECORDED:
            _put_back(self)
        return brpop_start(self, *args, **kwargs)

    kept_append._emailclient_kept = True
    QoS.append, Channel._brpop_start = kept_append, restoring_brpop_start
    ACTIVE.append("kombu#305")


def _put_back(channel):
    pending = list(_UNRECORDED)
    try:
        with channel.conn_or_acquire() as client:
            with client.pipeline() as pipe:
                for payload, exchange, routing_key in pending:
                    channel._do_restore_message(payload, exchange, routing_key, pipe)
                pipe.execute()
    except channel.connection_errors:
        return  # still no primary: the next poll tries again
    del _UNRECORDED[: len(pending)]
    for payload, _, _ in pending:
        log.warning("kombu#305: task %s put back on its queue", _task_id(payload))


def _task_id(payload):
    try:
        return payload["headers"]["id"]
    except (KeyError, TypeError):
        return "?"


def redis_disconnect_takes_the_error():
    """Let kombu's Redis connections be disconnected with the error that redis-py passes.

    kombu 5.2's Redis channel wraps its event-loop connections in a class whose disconnect() takes no
    argument, while redis-py 4.2+ calls disconnect(error) when a connect times out.  A connect that
    timed out during a failover then raised TypeError instead of redis-py's TimeoutError, which
    kombu's retry policy does not know, so the publish failed at once instead of being retried on the
    new primary (seen in the multi-host partition test).  The class is made to accept and drop the
    error.  Skipped where kombu's class already takes arguments (later releases).
    """
    from kombu.transport import redis as kredis

    connparams = kredis.Channel._connparams
    if getattr(connparams, "_emailclient_disconnect", False):
        return

    @functools.wraps(connparams)
    def patched(self, *args, **kwargs):
        params = connparams(self, *args, **kwargs)
        cls = params.get("connection_class")
        if cls is not None and _takes_no_arguments(cls.disconnect):

            class Connection(cls):
                def disconnect(self, *args):
                    cls.disconnect(self)

            params["connection_class"] = Connection
        return params

    patched._emailclient_disconnect = True
    kredis.Channel._connparams = patched
    ACTIVE.append("kombu: disconnect(error)")


def _takes_no_arguments(method):
    import inspect

    try:
        params = list(inspect.signature(method).parameters.values())[1:]  # after self
    except (TypeError, ValueError):
        return False
    return not params


def apply():
    """Apply every workaround the installed versions need (idempotent)."""
    redis_backend_retries()
    redis_unacked_record_kept()
    redis_disconnect_takes_the_error()
