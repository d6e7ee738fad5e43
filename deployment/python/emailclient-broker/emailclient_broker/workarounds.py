"""Workarounds for client bugs of the Celery and kombu versions that Debian ships (Celery 5.2.6,
kombu 5.2.4, redis-py 4.3.4 in bookworm).

Each one names its upstream issue and tests the installed code for the bug itself rather than a
version number, so it is skipped wherever the fix is present (a backport, a newer release).
ACTIVE lists the ones that applied in this process.
"""

ACTIVE = []


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


def apply():
    """Apply every workaround the installed versions need (idempotent)."""
    redis_backend_retries()
