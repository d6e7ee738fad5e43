"""Celery app of the email service, configured only from the environment.

This module is the reference for how the email service reads the ``CELERY_*``
variables that the Pulumi program sets on its container.  Every variable is
parsed and validated when the module is imported, so a worker or client with a
bad environment fails at once with an error naming the variable instead of
running with a silent default.  The broker and result-backend URLs are
required: there is deliberately no fallback to a local, unauthenticated Redis.

Values (secrets included) are never echoed in error messages.
"""

import os
import ssl
from urllib.parse import unquote, urlsplit

from celery import Celery

__all__ = ["ConfigError", "settings_from_env", "app", "LOG_LEVEL"]

REDIS_SCHEMES = ("redis", "rediss", "sentinel")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

# Defaults are the values the Pulumi program sets (BRIEF section 3); they only
# apply when a variable is absent.  The URLs have no default.
DEFAULTS = {
    "CELERY_TASK_SERIALIZER": "json",
    "CELERY_RESULT_SERIALIZER": "json",
    "CELERY_ACCEPT_CONTENT": "json",
    "CELERY_RESULT_EXPIRES": "86400",
    "CELERY_TASK_TIME_LIMIT": "3600",
    "CELERY_TASK_SOFT_TIME_LIMIT": "3000",
    "CELERY_WORKER_CONCURRENCY": "4",
    "CELERY_BROKER_VISIBILITY_TIMEOUT": "7200",
    "CELERY_TASK_ACKS_LATE": "true",
    "CELERY_TASK_REJECT_ON_WORKER_LOST": "false",
    "CELERY_WORKER_PREFETCH_MULTIPLIER": "1",
    "CELERY_LOG_LEVEL": "info",
}

# Seconds between connection health checks (PING on an idle connection) and
# the interval of TCP keepalive; both detect a broker that went away without
# closing the socket (restart, failover, NAT timeout).
HEALTH_CHECK_INTERVAL = 25


class ConfigError(ValueError):
    """A CELERY_* environment variable is missing or invalid."""


def _raw(env, name):
    value = env.get(name)
    if value is None or value.strip() == "":
        value = DEFAULTS.get(name)
    if value is None:
        raise ConfigError(f"{name} is required but not set")
    return value.strip()


def _url(env, name):
    """Validate a Redis URL, or a ';'-separated list of sentinel:// URLs (kombu's syntax)."""
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(
            f"{name} is required but not set (expected redis://user:password@host:6379/0; "
            "there is no localhost fallback)"
        )
    schemes = set()
    for part in value.split(";"):
        try:
            parts = urlsplit(part)
            parts.port  # raises ValueError on a bad port
        except ValueError:
            # Never echo the value: it carries the password.
            raise ConfigError(f"{name} is not a valid URL (is the password URL-encoded?)") from None
        if parts.scheme not in REDIS_SCHEMES:
            raise ConfigError(f"{name} must use the redis://, rediss:// or sentinel:// scheme")
        if not parts.hostname:
            raise ConfigError(f"{name} must name the Redis host (no localhost fallback)")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ConfigError(f"{name} must end with a numeric database (/0)")
        schemes.add(parts.scheme)
    if len(schemes) > 1 or (len(value.split(";")) > 1 and schemes != {"sentinel"}):
        raise ConfigError(f"{name}: only sentinel:// URLs can be listed with ';'")
    return value


def _sentinel_options(env, broker_url):
    """Transport options of a sentinel topology: the primary's name and the Sentinels' password
    (without it kombu reports "No master found")."""
    if not broker_url.startswith("sentinel://"):
        return {}
    master = env.get("CELERY_SENTINEL_MASTER_NAME", "").strip()
    if not master:
        raise ConfigError("CELERY_SENTINEL_MASTER_NAME is required with sentinel:// URLs")
    options = {"master_name": master}
    password = env.get("CELERY_SENTINEL_PASSWORD", "")
    if password:
        options["sentinel_kwargs"] = {"password": password}
    return options


def _tls_options(env):
    """Connection settings for Redis servers reached over TLS, whose certificates must verify against
    the CA in CELERY_REDIS_TLS_CA (PEM; set across hosts with topology.tls); None when it is unset."""
    ca = env.get("CELERY_REDIS_TLS_CA", "").strip()
    if not ca:
        return None
    if "-----BEGIN CERTIFICATE-----" not in ca:
        raise ConfigError("CELERY_REDIS_TLS_CA must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_data": ca + "\n"}


def _int(env, name, minimum):
    raw = _raw(env, name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _bool(env, name):
    raw = _raw(env, name).lower()
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env, name, choices):
    raw = _raw(env, name).lower()
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _list(env, name, choices):
    items = [item.strip().lower() for item in _raw(env, name).split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{name} must list at least one content type")
    for item in items:
        if item not in choices:
            raise ConfigError(f"{name}: unsupported content type {item!r} (use json)")
    return items


def settings_from_env(env=None):
    """Return the Celery settings read from ``env`` (default ``os.environ``).

    Raises ConfigError naming the variable when one is missing or invalid.
    """
    env = os.environ if env is None else env
    serializers = ("json",)  # pickle would let anyone who can write to Redis run code
    broker_url = _url(env, "CELERY_BROKER_URL")
    result_backend = _url(env, "CELERY_RESULT_BACKEND")
    time_limit = _int(env, "CELERY_TASK_TIME_LIMIT", 1)
    soft_time_limit = _int(env, "CELERY_TASK_SOFT_TIME_LIMIT", 1)
    visibility_timeout = _int(env, "CELERY_BROKER_VISIBILITY_TIMEOUT", 1)
    if soft_time_limit >= time_limit:
        raise ConfigError(
            f"CELERY_TASK_SOFT_TIME_LIMIT ({soft_time_limit}) must be below "
            f"CELERY_TASK_TIME_LIMIT ({time_limit})"
        )
    if visibility_timeout <= time_limit:
        # Redis redelivers an unacknowledged task after the visibility
        # timeout: a shorter one makes long emails run twice.
        raise ConfigError(
            f"CELERY_BROKER_VISIBILITY_TIMEOUT ({visibility_timeout}) must exceed "
            f"CELERY_TASK_TIME_LIMIT ({time_limit}), or long tasks run twice"
        )
    transport_options = {
        "visibility_timeout": visibility_timeout,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "retry_on_timeout": True,
    }
    transport_options.update(_sentinel_options(env, broker_url))
    tls = _tls_options(env)
    if tls and "master_name" in transport_options:
        # The Sentinels are asked over TLS too (redis-py's Redis(ssl=True, ...) keyword names).
        sentinel_kwargs = transport_options.setdefault("sentinel_kwargs", {})
        sentinel_kwargs.update(ssl=True, ssl_cert_reqs="required", ssl_ca_data=tls["ssl_ca_data"])
    if result_backend.startswith("sentinel://") != broker_url.startswith("sentinel://"):
        raise ConfigError("CELERY_BROKER_URL and CELERY_RESULT_BACKEND must both use sentinel:// or neither")
    extra = {}
    if tls:
        extra["broker_use_ssl"] = tls
        extra["redis_backend_use_ssl"] = dict(tls)
    if result_backend.startswith("sentinel://"):
        # Celery 5.2's SentinelBackend keeps the URL's password but drops its username, so the
        # primary would see AUTH for the disabled default user: pass the ACL user explicitly.
        username = urlsplit(result_backend.split(";")[0]).username
        if username:
            extra["redis_username"] = unquote(username)
    return extra | {
        "broker_url": broker_url,
        "result_backend": result_backend,
        "task_serializer": _choice(env, "CELERY_TASK_SERIALIZER", serializers),
        "result_serializer": _choice(env, "CELERY_RESULT_SERIALIZER", serializers),
        "accept_content": _list(env, "CELERY_ACCEPT_CONTENT", serializers),
        "result_accept_content": _list(env, "CELERY_ACCEPT_CONTENT", serializers),
        "result_expires": _int(env, "CELERY_RESULT_EXPIRES", 1),
        "task_time_limit": time_limit,
        "task_soft_time_limit": soft_time_limit,
        "worker_concurrency": _int(env, "CELERY_WORKER_CONCURRENCY", 1),
        "worker_prefetch_multiplier": _int(env, "CELERY_WORKER_PREFETCH_MULTIPLIER", 1),
        # acks_late + reject_on_worker_lost: a task is removed from Redis only
        # after it finished, so a worker or broker crash redelivers it instead
        # of losing it (tasks must therefore be idempotent).
        "task_acks_late": _bool(env, "CELERY_TASK_ACKS_LATE"),
        "task_reject_on_worker_lost": _bool(env, "CELERY_TASK_REJECT_ON_WORKER_LOST"),
        # Let a task that is running when the broker connection drops finish:
        # with Redis its ack is an HDEL on the shared unacked hash and goes
        # through once the pool reconnects.  Cancelling (True, the Celery 6
        # default, meant for AMQP) stored the task as REVOKED and left its
        # message for redelivery only after the visibility timeout (measured
        # by tests/celerytest TestBrokerRestartDuringWork).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": dict(transport_options),
        # Retry result reads and writes while Redis restarts instead of
        # failing the task with ConnectionError (Celery's default is not to
        # retry; see _backport_redis_backend_retry for Celery < 5.3).
        "result_backend_always_retry": True,
        "result_backend_max_retries": 10,
        "result_backend_base_sleep_between_retries_ms": 100,
        "result_backend_max_sleep_between_retries_ms": 5000,
        "redis_socket_keepalive": True,
        "redis_retry_on_timeout": True,
        "redis_backend_health_check_interval": HEALTH_CHECK_INTERVAL,
        # Survive broker restarts: keep reconnecting (None = forever), at
        # start-up too.  A worker that stays disconnected or stalls is caught
        # by the healthcheck, and the container restart policy replaces it.
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,  # Celery >= 5.3; ignored by 5.2
        "broker_connection_max_retries": None,
        "broker_connection_timeout": 10,
        # Publishing retries while Redis restarts, then raises: the caller sees
        # an error instead of a task silently lost.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 5,
            "interval_start": 0,
            "interval_step": 1,
            "interval_max": 3,
        },
        # Each worker also consumes <hostname>.dq, so the healthcheck can
        # prove that this very worker still takes tasks from Redis.
        "worker_direct": True,
        "worker_send_task_events": False,
    }


def _backport_redis_backend_retry():
    """Let result_backend_always_retry cover Redis connection errors.

    Celery < 5.3 never treats a Redis error as safe to retry, so a task that
    finishes while Redis restarts fails with ConnectionError (its result
    store first reads the current state, unretried).  Celery 5.3+ already
    does this; there the patch is skipped.
    """
    from celery.backends.base import Backend
    from celery.backends.redis import RedisBackend

    if RedisBackend.exception_safe_to_retry is not Backend.exception_safe_to_retry:
        return

    def exception_safe_to_retry(self, exc):
        return isinstance(exc, self.connection_errors)

    RedisBackend.exception_safe_to_retry = exception_safe_to_retry


LOG_LEVEL = _choice(os.environ, "CELERY_LOG_LEVEL", LOG_LEVELS)
_backport_redis_backend_retry()

app = Celery("emailworker", include=["emailworker.tasks"])
app.conf.update(settings_from_env())
