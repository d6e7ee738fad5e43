"""Waiting for the broker before a worker consumes.

The Pulumi program may start the email-service alongside Redis (emailService.waitForRedis false,
the dev default) instead of after Redis is healthy.  A worker that calls wait_for_broker first
starts consuming only once Redis answers an authenticated PING (through the Sentinels in a Sentinel
topology, over TLS across hosts), polling every fraction of a second; Celery's own start-up retry
would wait 2 s, then 4 s, between attempts.  Hook it on the worker_init signal::

    from celery import signals
    from emailclient_broker import wait_for_broker

    @signals.worker_init.connect
    def _broker_first(**_):
        wait_for_broker(app)
"""

import logging
import time

log = logging.getLogger("emailclient_broker.ready")

# WAIT_TIMEOUT is how many seconds wait_for_broker waits by default: longer than the program's Redis
# start period (30 s, an AOF being loaded answers LOADING until then) and short enough that a wrong
# password shows as a worker that exits, restarts and says why, not one that waits silently.
WAIT_TIMEOUT = 60.0

# POLL_INTERVAL is the seconds between attempts.
POLL_INTERVAL = 0.2


class BrokerNotReadyError(ConnectionError):
    """The broker did not answer an authenticated PING within the timeout; the last error is chained."""


def wait_for_broker(app, timeout=WAIT_TIMEOUT, interval=POLL_INTERVAL):
    """Block until the Celery app's broker answers an authenticated PING, and return the seconds
    waited.  Raises BrokerNotReadyError after ``timeout`` seconds, naming the last error (a refused
    connection, WRONGPASS, LOADING, no primary known to the Sentinels) but never the URL, which
    holds the password.  Each attempt goes through the app's own connection, so the transport options
    (Sentinel master name, TLS, socket timeouts) are the ones the worker will use."""
    start = time.monotonic()
    last, attempts = None, 0
    while True:
        attempts += 1
        conn = app.connection_for_write()
        try:
            # One attempt (kombu's own retries wait 2 s and more): its Redis channel PINGs when it is
            # created, so a wrong password, a loading server or an unknown primary raise here.
            conn.ensure_connection(max_retries=0)
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
            raise BrokerNotReadyError(f"the broker did not answer within {timeout:g}s ({attempts} attempts); last error: {type(last).__name__}: {last}") from last
        time.sleep(interval)
