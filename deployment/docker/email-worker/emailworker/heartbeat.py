"""Heartbeat and stall watchdog of the reference worker.

A thread in the worker's main process sends a ``heartbeat`` task to the
worker's own direct queue every ``EMAILWORKER_HEARTBEAT_SECONDS`` (default 5).
When the consumer takes it from Redis, the worker writes the time into
``EMAILWORKER_HEARTBEAT_FILE`` (default /tmp/emailworker-heartbeat).  A worker
whose every process is busy does not fetch (prefetch limit): it writes
``busy`` instead, since a running task is progress.

- The container's healthcheck (``emailworker-alive``) only reads that file:
  no Python start per probe, so Docker can probe every few seconds and
  ``pulumi up`` waits seconds, not minutes, for a healthy worker.
- The watchdog: when the last heartbeat is older than
  ``EMAILWORKER_STALL_EXIT_SECONDS`` (default 120, 0 disables), the worker
  stops itself (a warm shutdown, then exit status 75 if that hangs), and the
  container's restart policy starts a fresh one.  From that moment the file
  says ``stalled``, so the healthcheck fails while the worker shuts down.
  Docker never restarts a merely unhealthy container, so without this a
  consumer stalled after a broker restart (kombu < 5.4, celery#8030) stays
  stalled until a person acts.  Unacknowledged tasks stay in Redis (acks_late)
  and are redelivered.
"""

import logging
import os
import signal
import threading
import time

from celery import signals
from celery.utils.nodenames import worker_direct
from celery.worker import state

from emailworker.app import ConfigError

__all__ = ["HEARTBEAT_TASK", "settings", "beat", "last_beat"]

HEARTBEAT_TASK = "emailworker.tasks.heartbeat"
EXIT_STALLED = 75  # EX_TEMPFAIL: try again (the restart policy does)

log = logging.getLogger("emailworker.heartbeat")
_last = {"at": None}


def settings(env=None):
    """Return (file, period seconds, stall exit seconds) from ``env``.

    Raises ConfigError naming the variable and the accepted values.
    """
    env = os.environ if env is None else env

    def number(name, default, low, high, zero_ok=False):
        raw = env.get(name, "").strip() or str(default)
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or not (low <= value <= high or (zero_ok and value == 0)):
            accepted = f"{low}-{high}" + (" or 0 (off)" if zero_ok else "")
            raise ConfigError(f"{name} must be a whole number of seconds, {accepted}; got {raw!r}")
        return value

    period = number("EMAILWORKER_HEARTBEAT_SECONDS", 5, 1, 300)
    stall = number("EMAILWORKER_STALL_EXIT_SECONDS", 120, 3 * period, 86400, zero_ok=True)
    path = env.get("EMAILWORKER_HEARTBEAT_FILE", "").strip() or "/tmp/emailworker-heartbeat"
    return path, period, stall


# Read at import, so a bad value stops the worker at start with a clear error.
FILE, PERIOD, STALL_EXIT = settings()


def beat(path, what):
    """Record a heartbeat: '<unix time> <what>' written atomically to path."""
    now = time.time()
    _last["at"] = now
    _write(path, now, what)


def _write(path, at, what):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{int(at)} {what}\n")
    os.replace(tmp, path)


def last_beat():
    """Unix time of the last heartbeat of this process, or None."""
    return _last["at"]


def _busy(consumer):
    limit = getattr(consumer, "initial_prefetch_count", 0) or 0
    return limit > 0 and len(state.reserved_requests) >= limit


def _send(app, consumer, path, period):
    """Sends a heartbeat every period (writes "busy" instead while every process is taken)."""
    queue = worker_direct(consumer.hostname)
    while True:
        if _busy(consumer):
            beat(path, "busy")
        else:
            try:
                # Expires: a stalled worker that recovers skips stale heartbeats. No publish retries:
                # with the broker down the heartbeat goes stale, which is the point.
                app.send_task(HEARTBEAT_TASK, queue=queue, expires=2 * period, ignore_result=True, retry=False)
            except Exception as exc:
                log.warning("heartbeat not sent: %s: %s", type(exc).__name__, exc)
        time.sleep(period)


def _watch(path, period, stall):
    """Stops the worker once the last heartbeat is older than stall seconds: first a warm shutdown
    (SIGTERM: running tasks finish and are acknowledged), then, if it is still running after another
    stall seconds, an exit with EXIT_STALLED. The heartbeat file says "stalled" (with the time of the
    last heartbeat) from the start, so the healthcheck fails at once instead of when the last
    heartbeat ages past its limit."""
    while time.time() - last_beat() <= stall:
        time.sleep(period)
    _write(path, last_beat(), "stalled")
    log.error("no task taken from Redis for %.0fs (EMAILWORKER_STALL_EXIT_SECONDS=%d): "
              "stopping so that the restart policy starts a fresh worker", time.time() - last_beat(), stall)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(stall)
    log.error("still running %ds after SIGTERM: exiting with status %d", stall, EXIT_STALLED)
    logging.shutdown()
    os._exit(EXIT_STALLED)


class _QuietHeartbeats(logging.Filter):
    """Drops Celery's received/succeeded lines of heartbeat tasks."""

    def filter(self, record):
        data = getattr(record, "data", None)
        return not (isinstance(data, dict) and data.get("name") == HEARTBEAT_TASK)


@signals.after_setup_logger.connect
def _quiet(logger=None, **_):
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(_QuietHeartbeats())


@signals.task_received.connect
def _received(request=None, **_):
    if request is not None and request.name == HEARTBEAT_TASK:
        beat(FILE, "consuming")


@signals.worker_ready.connect
def _start(sender=None, **_):
    # "ready" starts the watchdog's clock; the healthcheck waits for "consuming" or "busy".
    beat(FILE, "ready")
    threading.Thread(target=_send, args=(sender.app, sender, FILE, PERIOD),
                     name="emailworker-heartbeat", daemon=True).start()
    if STALL_EXIT:
        threading.Thread(target=_watch, args=(FILE, PERIOD, STALL_EXIT), name="emailworker-watchdog", daemon=True).start()
