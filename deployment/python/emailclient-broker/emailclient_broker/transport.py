"""Synchronous enqueue: kombu's Redis transports with a publish that waits for replicas.

Redis replicates asynchronously: the primary acknowledges an LPUSH before any replica has it, so a
primary that is cut off from its replicas (a partition, a paused VM) goes on acknowledging tasks that
the failover then discards.  With synchronous enqueue on, every task is pushed with a non-transactional
pipeline of ``LPUSH`` + ``WAIT <replicas> <timeout>``: one connection from the pool, so the WAIT counts
the replicas that acknowledged this very write, and the publish returns only when enough of them did.
Fewer in time raise EnqueueNotReplicatedError, which is not a connection error: Celery's publish retry
does not push the task again (a second copy would run twice once replication catches up), the caller
sees it and decides.

celery_settings selects these classes through Celery's ``broker_transport`` setting ("module:Class"),
which kombu's Connection prefers over the URL's scheme; the URLs (redis://, ;-separated sentinel://)
stay what the program hands out.  The options arrive as kombu transport options
(``sync_enqueue_replicas``, ``sync_enqueue_timeout_ms``); with 0 replicas the publish is kombu's own.
"""

from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

OPTIONS = ("sync_enqueue_replicas", "sync_enqueue_timeout_ms")

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


class _WaitingPut:
    """The publish of a kombu Redis channel, followed by WAIT on the same connection."""

    sync_enqueue_replicas = 0
    sync_enqueue_timeout_ms = 1000

    def _put(self, queue, message, **kwargs):
        replicas = int(self.sync_enqueue_replicas or 0)
        if replicas <= 0:
            return super()._put(queue, message, **kwargs)
        timeout = int(self.sync_enqueue_timeout_ms)
        # As kombu's Channel._put (5.2 to 5.4), plus WAIT in the same round trip.
        pri = self._get_message_priority(message, reverse=False)
        with self.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            pipe.lpush(self._q_for_pri(queue, pri), dumps(message))
            pipe.wait(replicas, timeout)
            _, acknowledged = pipe.execute()  # a refused LPUSH (NOREPLICAS, OOM) raises here
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
