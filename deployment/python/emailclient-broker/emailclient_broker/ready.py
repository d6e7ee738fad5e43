"""Waiting for the broker before a worker consumes.

The Pulumi program may start the email-service alongside Redis (emailService.waitForRedis false,
the dev default, and every first deploy of a Sentinel topology's data nodes and Sentinels) instead of
after Redis is healthy.  A worker that calls wait_for_broker first starts consuming only once Redis
answers an authenticated PING and accepts a write (through the Sentinels in a Sentinel topology, over
TLS across hosts), polling every fraction of a second.  The write matters in a Sentinel topology: a
primary whose replicas have not synced yet answers PING but refuses writes (NOREPLICAS, from
min-replicas-to-write), and the worker's first write at start (kombu's lock on the unacknowledged
messages) would end it with "Unrecoverable error".  Celery's own start-up retry waits 2 s, then 4 s,
between attempts, and does not retry that refusal.  Hook it on the worker_init signal::

    from celery import signals
    from emailclient_broker import wait_for_broker

    @signals.worker_init.connect
    def _broker_first(**_):
        wait_for_broker(app)
"""

import logging
import time

from redis.exceptions import NoPermissionError

log = logging.getLogger("emailclient_broker.ready")

# WAIT_TIMEOUT is how many seconds wait_for_broker waits by default: longer than the program's Redis
# start period (30 s, an AOF being loaded answers LOADING until then) and short enough that a wrong
# password shows as a worker that exits, restarts and says why, not one that waits silently.
WAIT_TIMEOUT = 60.0

# POLL_INTERVAL is the seconds between attempts.
POLL_INTERVAL = 0.2

# WRITE_PROBE_KEY is the key the write probe deletes: nothing stores it, so the DEL changes nothing,
# but Redis checks a write command against min-replicas-to-write (NOREPLICAS) and a replica's
# read-only role (READONLY) before it runs, as it will the worker's own writes.  A user whose ACL
# denies DEL (NOPERM) gets the PING check alone.
WRITE_PROBE_KEY = "_emailclient.ready-probe"


class BrokerNotReadyError(ConnectionError):
    """The broker did not answer an authenticated PING and accept a write within the timeout; the last
    error is chained."""


def wait_for_broker(app, timeout=WAIT_TIMEOUT, interval=POLL_INTERVAL):
    """Block until the Celery app's broker answers an authenticated PING and accepts a write (see
    WRITE_PROBE_KEY), and return the seconds waited.  Raises BrokerNotReadyError after ``timeout``
    seconds, naming the last error (a refused connection, WRONGPASS, LOADING, NOREPLICAS, no primary
    known to the Sentinels) but never the URL, which holds the password.  Each attempt goes through
    the app's own connection, so the transport options (Sentinel master name, TLS, socket timeouts)
    are the ones the worker will use."""
    start = time.monotonic()
    last, attempts = None, 0
    while True:
        attempts += 1
        conn = app.connection_for_write()
        try:
            # One attempt (kombu's own retries wait 2 s and more): its Redis channel PINGs when it is
            # created, so a wrong password, a loading server or an unknown primary raise here.
            conn.ensure_connection(max_retries=0)
            _probe_write(conn.default_channel)
            waited = time.monotonic() - start
            if attempts > 1:
                log.info("broker ready after %.1fs (%d attempts)", waited, attempts)
            return waited
        except Exception as exc:  # every failure of an attempt is retried until the deadline
            if last is None:
                log.info("waiting for the broker: %s: %s", type(exc).__name__, exc)
            last = exc
        finally:
            conn.release()
        if time.monotonic() - start + interval > timeout:
            raise BrokerNotReadyError(f"the broker was not ready within {timeout:g}s ({attempts} attempts); last error: {type(last).__name__}: {last}") from last
        time.sleep(interval)


def _probe_write(channel):
    """DEL WRITE_PROBE_KEY on the channel's Redis (the primary, through the Sentinels); NOPERM passes."""
    with channel.conn_or_acquire() as client:
        try:
            client.delete(WRITE_PROBE_KEY)
        except NoPermissionError:
            pass
