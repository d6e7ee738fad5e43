"""Synchronous enqueue: kombu's Redis transports with a publish that waits for replicas.

Redis replicates asynchronously: the primary acknowledges an LPUSH before any replica has it, so a
primary that is cut off from its replicas (a partition, a paused VM) goes on acknowledging tasks that
the failover then discards.  With synchronous enqueue on, every task is pushed with a non-transactional
pipeline of ``LPUSH`` + ``WAIT <replicas> <timeout>``: one connection from the pool, so the WAIT counts
the replicas that acknowledged this very write, and the publish returns only when enough of them did.
Fewer in time raise EnqueueNotReplicatedError, which is not a connection error: Celery's publish retry
does not push the task again (a second copy would run twice once replication catches up), the caller
sees it and decides.

A pipeline that fails after it was sent (a socket timeout on a frozen or cut-off primary, a dropped
connection) leaves the task's fate unknown: the primary may have applied the LPUSH.  It is neither
retried by redis-py (whose ``retry_on_timeout`` re-executes a whole pipeline once, redis-py 4.3.4
``Pipeline.execute``) nor by Celery (a Redis TimeoutError is one of kombu's connection errors, which
Celery's publish retry re-publishes): it raises EnqueueOutcomeUnknownError, a kind of
EnqueueNotReplicatedError.  A failure to connect sent nothing and stays a connection error, retried.

celery_settings selects these classes through Celery's ``broker_transport`` setting ("module:Class"),
which kombu's Connection prefers over the URL's scheme; the URLs (redis://, ;-separated sentinel://)
stay what the program hands out.  The options arrive as kombu transport options
(``sync_enqueue_replicas``, ``sync_enqueue_timeout_ms``); with 0 replicas the publish is kombu's own.
"""

from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

OPTIONS = ("sync_enqueue_replicas", "sync_enqueue_timeout_ms")

# READONLY_AS_CONNECTION_ERROR is the message of the ConnectionError that redis-py's Sentinel connection
# raises in place of a READONLY reply (redis-py 4.x SentinelManagedConnection.read_response).
READONLY_AS_CONNECTION_ERROR = "The previous master is now a slave"

# The broker_transport values celery_settings sets, by URL scheme.
TRANSPORTS = {
    "redis": "emailclient_broker.transport:Transport",
    "rediss": "emailclient_broker.transport:Transport",
    "sentinel": "emailclient_broker.transport:SentinelTransport",
}


class EnqueueNotReplicatedError(Exception):
    """Fewer replicas than required acknowledged an enqueued task within the timeout.

    The task was written to the server the producer knows as the primary, but it is not known to be on
    a replica: a failover now may discard it, or it may still run (a replica acknowledged it late, or
    the primary was never in danger).  Enqueue it again only if running it twice is harmless (the same
    task id, an idempotent task); otherwise record it for a person.  Attributes: queue, acknowledged,
    required, timeout_ms.
    """

    def __init__(self, queue, acknowledged, required, timeout_ms):
        self.queue, self.acknowledged, self.required, self.timeout_ms = queue, acknowledged, required, timeout_ms
        super().__init__(
            f"task enqueued on {queue!r} but only {acknowledged} of {required} required replicas acknowledged it "
            f"within {timeout_ms} ms (Redis WAIT): it is not safe from a failover"
        )


class EnqueueOutcomeUnknownError(EnqueueNotReplicatedError):
    """The connection failed after the task was sent and before the primary answered.

    Typically the socket timeout on a primary that is frozen or cut off: the primary may have applied
    the LPUSH (and a failover may discard it), or may never have seen it.  Handle it as
    EnqueueNotReplicatedError (it is one): enqueue again only if running the task twice is harmless.
    acknowledged is None; cause is the connection error's text.
    """

    def __init__(self, queue, required, timeout_ms, cause):
        self.queue, self.acknowledged, self.required, self.timeout_ms = queue, None, required, timeout_ms
        self.cause = cause
        Exception.__init__(
            self,
            f"task sent to {queue!r} but the connection failed before the primary answered ({cause}): it may or "
            f"may not be enqueued, and no replica is known to have it; not retried, to avoid a second copy",
        )


class _WaitingPut:
    """The publish of a kombu Redis channel, followed by WAIT on the same connection."""

    sync_enqueue_replicas = 0
    sync_enqueue_timeout_ms = 1000

    def _put(self, queue, message, **kwargs):
        replicas = int(self.sync_enqueue_replicas or 0)
        if replicas <= 0:
            return super()._put(queue, message, **kwargs)
        timeout = int(self.sync_enqueue_timeout_ms)
        # As kombu's Channel._put (5.2 to 5.4), plus WAIT in the same round trip, sent by hand on one
        # connection rather than through redis-py's pipeline, which re-sends it once on a timeout.
        pri = self._get_message_priority(message, reverse=False)
        key = (getattr(self, "global_keyprefix", None) or "") + self._q_for_pri(queue, pri)
        with self.conn_or_acquire() as client:
            pool = client.connection_pool
            conn = pool.get_connection("LPUSH")  # connects: a failure here sent nothing, kombu may retry
            try:
                conn.check_health()  # its PING, if due, before the task is sent
                replies = []
                try:
                    conn.send_packed_command(
                        conn.pack_commands([("LPUSH", key, dumps(message)), ("WAIT", replicas, timeout)]),
                        check_health=False,
                    )
                    for _ in range(2):  # both replies are read, so the connection stays in step
                        try:
                            replies.append(conn.read_response())
                        except ResponseError as exc:
                            replies.append(exc)
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    conn.disconnect()
                    if not replies and READONLY_AS_CONNECTION_ERROR in str(exc):
                        # The LPUSH was refused with READONLY (the old primary was demoted), which
                        # redis-py's Sentinel connection turns into a ConnectionError: nothing was
                        # written, so it stays a connection error and is retried on the new primary.
                        raise
                    raise EnqueueOutcomeUnknownError(queue, replicas, timeout, f"{type(exc).__name__}: {exc}") from exc
            finally:
                pool.release(conn)
        pushed, acknowledged = replies
        if isinstance(pushed, ResponseError):
            raise pushed  # a refused LPUSH (NOREPLICAS, OOM): nothing was written
        if isinstance(acknowledged, ResponseError):
            raise acknowledged
        if acknowledged < replicas:
            raise EnqueueNotReplicatedError(queue, acknowledged, replicas, timeout)


class Channel(_WaitingPut, kombu_redis.Channel):
    """kombu's Redis channel with synchronous enqueue."""

    from_transport_options = kombu_redis.Channel.from_transport_options + OPTIONS


class SentinelChannel(_WaitingPut, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel with synchronous enqueue."""

    from_transport_options = kombu_redis.SentinelChannel.from_transport_options + OPTIONS


class Transport(kombu_redis.Transport):
    """kombu's Redis transport (redis://, rediss://) with synchronous enqueue."""

    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport (sentinel://) with synchronous enqueue."""

    Channel = SentinelChannel
