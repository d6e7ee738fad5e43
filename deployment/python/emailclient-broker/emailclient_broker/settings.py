"""The program's env contract turned into Celery settings.

Every variable is parsed and validated before anything connects, so a worker or
producer with a bad environment fails at once with an error naming the variable
instead of running with a silent default.  The broker and result-backend URLs
are required: there is deliberately no fallback to a local, unauthenticated
Redis.  Values (secrets included) are never echoed in error messages.
"""

import os
import ssl
from urllib.parse import unquote, urlsplit

from emailclient_broker import transport, workarounds

REDIS_SCHEMES = ("redis", "rediss", "sentinel")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
SERIALIZERS = ("json",)  # pickle would let anyone who can write to Redis run code
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

# ENV_VARIABLES is the env contract: every variable the Pulumi program sets on the
# email-service for this package, with the default that applies when it is absent
# (the program's own defaults; None: required, or set only in some topologies).
# docs/OPERATIONS.md's table lists the same names; a test keeps the two equal.
ENV_VARIABLES = {
    "CELERY_BROKER_URL": None,
    "CELERY_RESULT_BACKEND": None,
    "CELERY_SENTINEL_MASTER_NAME": None,
    "CELERY_SENTINEL_PASSWORD": None,
    "CELERY_REDIS_TLS_CA": None,
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
    "CELERY_SYNC_ENQUEUE_REPLICAS": None,
    "CELERY_SYNC_ENQUEUE_TIMEOUT_MS": None,
}

# HEALTH_CHECK_INTERVAL is the seconds between connection health checks (PING on an
# idle connection) and the TCP keepalive: both detect a broker that went away
# without closing the socket (restart, failover, NAT timeout).
HEALTH_CHECK_INTERVAL = 25

# SOCKET_TIMEOUT is the seconds any Redis or Sentinel connection of the broker and the result backend
# waits to connect and for a reply before it raises (redis-py's default, and kombu's: wait forever).
# Without it a producer or worker blocks on a frozen or cut-off primary for as long as the fault
# lasts, not only until the Sentinels promote a replica (tests/celerystack TestPausedPrimary...).
# It must exceed the longest wait the server itself takes: kombu's BRPOP (1 s in kombu 5.2 to 5.4,
# Channel._brpop_start) and, with synchronous enqueue, WAIT's timeout, which is added to it.
SOCKET_TIMEOUT = 5

# SYNC_ENQUEUE_MAX_TIMEOUT_MS bounds CELERY_SYNC_ENQUEUE_TIMEOUT_MS as the program does
# (celery.syncEnqueue.timeoutMilliseconds): WAIT's 0 waits forever.
SYNC_ENQUEUE_MAX_TIMEOUT_MS = 60000


class ConfigError(ValueError):
    """A variable of the env contract (or a stack output) is missing or invalid."""


def _raw(env, name):
    value = env.get(name)
    if value is None or value.strip() == "":
        value = ENV_VARIABLES.get(name)
    if value is None:
        raise ConfigError(f"{name} is required but not set")
    return value.strip()


def _urls(env, name):
    """Validate a Redis URL, or a ';'-separated list of sentinel:// URLs (kombu's syntax).

    Returns the value and its one scheme."""
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(
            f"{name} is required but not set (expected redis://user:password@host:6379/0; "
            "there is no localhost fallback)"
        )
    parts = value.split(";")
    schemes = set()
    for part in parts:
        try:
            url = urlsplit(part)
            url.port  # raises ValueError on a bad port
        except ValueError:
            # Never echo the value: it carries the password.
            raise ConfigError(f"{name} is not a valid URL (is the password URL-encoded?)") from None
        if url.scheme not in REDIS_SCHEMES:
            raise ConfigError(f"{name} must use one of the schemes {', '.join(s + '://' for s in REDIS_SCHEMES)}")
        if not url.hostname:
            raise ConfigError(f"{name} must name the Redis host (no localhost fallback)")
        db = url.path.lstrip("/")
        if db and not db.isdigit():
            raise ConfigError(f"{name} must end with a numeric database (/0)")
        schemes.add(url.scheme)
    if len(schemes) > 1:
        raise ConfigError(f"{name} mixes schemes ({', '.join(sorted(schemes))}): use one")
    scheme = schemes.pop()
    if len(parts) > 1 and scheme != "sentinel":
        raise ConfigError(f"{name}: only sentinel:// URLs can be listed with ';'")
    return value, scheme


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


def _content_types(env, name):
    items = [item.strip().lower() for item in _raw(env, name).split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{name} must list at least one content type")
    for item in items:
        if item not in SERIALIZERS:
            raise ConfigError(f"{name}: unsupported content type {item!r} (accepted: {', '.join(SERIALIZERS)})")
    return items


def _tls(env):
    """The CA that Redis servers reached over TLS must verify against (PEM, CELERY_REDIS_TLS_CA;
    set across hosts with topology.tls), checked by loading it; None when it is unset."""
    ca = env.get("CELERY_REDIS_TLS_CA", "").strip()
    if not ca:
        return None
    if "-----BEGIN CERTIFICATE-----" not in ca:
        raise ConfigError("CELERY_REDIS_TLS_CA must be a PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cadata=ca + "\n")
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"CELERY_REDIS_TLS_CA is not a valid PEM certificate ({type(exc).__name__})") from None
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_data": ca + "\n"}


def _sentinel(env, scheme):
    """Transport options of a Sentinel topology: the primary's name and the Sentinels' own password
    (without either, kombu reports "No master found")."""
    master = env.get("CELERY_SENTINEL_MASTER_NAME", "").strip()
    if scheme != "sentinel":
        for name in ("CELERY_SENTINEL_MASTER_NAME", "CELERY_SENTINEL_PASSWORD"):
            if env.get(name, "").strip():
                raise ConfigError(f"{name} is set but CELERY_BROKER_URL is not sentinel://")
        return {}
    if not master:
        raise ConfigError("CELERY_SENTINEL_MASTER_NAME is required with sentinel:// URLs")
    # sentinel_kwargs replaces redis-py's own Sentinel connection options: the timeouts go in too, or a
    # Sentinel on a host that is cut off blocks every look-up of the primary.
    options = {"master_name": master, "sentinel_kwargs": {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": SOCKET_TIMEOUT}}
    password = env.get("CELERY_SENTINEL_PASSWORD", "")
    if password:
        options["sentinel_kwargs"]["password"] = password
    return options


def _sync_enqueue(env, scheme):
    """Synchronous enqueue (celery.syncEnqueue): the transport options of emailclient_broker.transport,
    or {} when CELERY_SYNC_ENQUEUE_REPLICAS is unset or 0 (kombu's asynchronous publish)."""
    if not env.get("CELERY_SYNC_ENQUEUE_REPLICAS", "").strip():
        if env.get("CELERY_SYNC_ENQUEUE_TIMEOUT_MS", "").strip():
            raise ConfigError("CELERY_SYNC_ENQUEUE_TIMEOUT_MS is set but CELERY_SYNC_ENQUEUE_REPLICAS is not")
        return {}
    replicas = _int(env, "CELERY_SYNC_ENQUEUE_REPLICAS", 0)
    if replicas == 0:
        return {}
    if not env.get("CELERY_SYNC_ENQUEUE_TIMEOUT_MS", "").strip():
        raise ConfigError("CELERY_SYNC_ENQUEUE_TIMEOUT_MS is required with CELERY_SYNC_ENQUEUE_REPLICAS")
    timeout = _int(env, "CELERY_SYNC_ENQUEUE_TIMEOUT_MS", 1)
    if timeout > SYNC_ENQUEUE_MAX_TIMEOUT_MS:
        raise ConfigError(f"CELERY_SYNC_ENQUEUE_TIMEOUT_MS must be <= {SYNC_ENQUEUE_MAX_TIMEOUT_MS}, got {timeout}")
    return {
        "transport": transport.TRANSPORTS[scheme],
        "options": {"sync_enqueue_replicas": replicas, "sync_enqueue_timeout_ms": timeout},
    }


def log_level(env=None):
    """The worker's log level, CELERY_LOG_LEVEL (default info; one of LOG_LEVELS)."""
    return _choice(os.environ if env is None else env, "CELERY_LOG_LEVEL", LOG_LEVELS)


def celery_settings(env=None):
    """Return the Celery settings (for ``app.conf.update``) read from ``env`` (default ``os.environ``).

    Covers standalone (redis://), Sentinel (sentinel:// URLs, master name, the Sentinels' password)
    and TLS across hosts (CELERY_REDIS_TLS_CA).  Raises ConfigError naming the variable when one is
    missing or invalid; nothing connects before that.  Also applies the workarounds for the
    installed Celery/kombu (see emailclient_broker.workarounds).
    """
    env = os.environ if env is None else env
    broker_url, scheme = _urls(env, "CELERY_BROKER_URL")
    result_backend, result_scheme = _urls(env, "CELERY_RESULT_BACKEND")
    if (scheme == "sentinel") != (result_scheme == "sentinel"):
        raise ConfigError("CELERY_BROKER_URL and CELERY_RESULT_BACKEND must both use sentinel:// or neither")
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
    log_level(env)  # validated here too, so that a producer fails on the same input as the worker
    transport_options = {
        "visibility_timeout": visibility_timeout,
        "socket_keepalive": True,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "retry_on_timeout": True,  # a plain command; the synchronous publish is never re-sent
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
    }
    transport_options.update(_sentinel(env, scheme))
    tls = _tls(env)
    extra = {}
    sync = _sync_enqueue(env, scheme)
    if sync:
        # Every publish waits for the replicas (see emailclient_broker.transport); Celery's
        # broker_transport wins over the URL's scheme, and the URLs stay as they are. A reply to WAIT
        # takes up to its timeout: the broker's socket timeout waits that much longer.
        extra["broker_transport"] = sync["transport"]
        transport_options.update(sync["options"])
        transport_options["socket_timeout"] = SOCKET_TIMEOUT + -(-sync["options"]["sync_enqueue_timeout_ms"] // 1000)
    if tls:
        extra["broker_use_ssl"] = tls
        extra["redis_backend_use_ssl"] = dict(tls)
        if scheme == "sentinel":
            # The Sentinels are asked over TLS too (redis-py's Redis(ssl=True, ...) keyword names).
            sentinel_kwargs = transport_options.setdefault("sentinel_kwargs", {})
            sentinel_kwargs.update(ssl=True, ssl_cert_reqs="required", ssl_ca_data=tls["ssl_ca_data"])
    if scheme == "sentinel" and workarounds.sentinel_backend_drops_username():
        username = urlsplit(result_backend.split(";")[0]).username
        if username:
            extra["redis_username"] = unquote(username)
    workarounds.apply()
    return extra | {
        "broker_url": broker_url,
        "result_backend": result_backend,
        "task_serializer": _choice(env, "CELERY_TASK_SERIALIZER", SERIALIZERS),
        "result_serializer": _choice(env, "CELERY_RESULT_SERIALIZER", SERIALIZERS),
        "accept_content": _content_types(env, "CELERY_ACCEPT_CONTENT"),
        "result_accept_content": _content_types(env, "CELERY_ACCEPT_CONTENT"),
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
        "result_backend_transport_options": {k: v for k, v in transport_options.items() if k not in transport.OPTIONS}
        | {"socket_timeout": SOCKET_TIMEOUT},  # results are not enqueued: no WAIT
        # Retry result reads and writes while Redis restarts or fails over
        # instead of failing the task with ConnectionError (see
        # workarounds.redis_backend_retries for Celery < 5.5).
        "result_backend_always_retry": True,
        "result_backend_max_retries": 10,
        "result_backend_base_sleep_between_retries_ms": 100,
        "result_backend_max_sleep_between_retries_ms": 5000,
        "redis_socket_keepalive": True,
        "redis_retry_on_timeout": True,
        "redis_socket_timeout": SOCKET_TIMEOUT,
        "redis_socket_connect_timeout": SOCKET_TIMEOUT,
        "redis_backend_health_check_interval": HEALTH_CHECK_INTERVAL,
        # Survive broker restarts: keep reconnecting (None = forever), at
        # start-up too.
        "broker_connection_retry": True,
        "broker_connection_retry_on_startup": True,  # Celery >= 5.3; ignored by 5.2
        "broker_connection_max_retries": None,
        "broker_connection_timeout": 10,
        # Publishing retries while Redis restarts or fails over, then raises:
        # the caller sees an error instead of a task silently lost.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 5,
            "interval_start": 0,
            "interval_step": 1,
            "interval_max": 3,
        },
    }


# OUTPUTS maps the stack outputs celery_settings_from_outputs reads to the env contract.
OUTPUTS = {
    "celeryBrokerUrl": "CELERY_BROKER_URL",
    "celeryResultBackend": "CELERY_RESULT_BACKEND",
    "sentinelMasterName": "CELERY_SENTINEL_MASTER_NAME",
    "sentinelPassword": "CELERY_SENTINEL_PASSWORD",
    "redisTlsCa": "CELERY_REDIS_TLS_CA",
}


def env_from_outputs(outputs):
    """The env contract built from the stack outputs (``pulumi stack output --json --show-secrets``).

    ``celeryEnv`` carries the plain settings; the URLs, the master name, the Sentinels' password and
    the CA come from their own outputs.  Where the stack publishes Redis on this host
    (``redisHostAddress``, dev), the redis:// URLs are pointed there, since the network alias in
    them resolves only on the stack's Docker network.  Raises ConfigError naming the output.
    """
    if not isinstance(outputs, dict):
        raise ConfigError("outputs must be the JSON object of `pulumi stack output --json --show-secrets`")
    plain = outputs.get("celeryEnv")
    if not isinstance(plain, dict):
        raise ConfigError("output celeryEnv is missing: deploy the stack with this version of the program (make up)")
    env = {str(k): str(v) for k, v in plain.items()}
    for output, name in OUTPUTS.items():
        value = outputs.get(output)
        if value is None:
            continue
        if value == "[secret]":
            raise ConfigError(f"output {output} is hidden: use `pulumi stack output --json --show-secrets`")
        env[name] = str(value)
    published = outputs.get("redisHostAddress")
    if published:
        for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
            env[name] = _moved(env.get(name, ""), outputs.get("redisHost"), outputs.get("redisPort"), published)
    return env


def _moved(url, host, port, address):
    """url with its host:port (the stack's network alias) replaced by the published address.

    A string replacement: re-encoding the URL would change how the password is escaped."""
    if not url.startswith("redis") or not host or not port:
        return url
    netloc = urlsplit(url).netloc
    alias = f"@{host}:{port}"
    if not netloc.endswith(alias):
        return url
    return url.replace(alias, f"@{address}", 1)  # the one "@": the password in front is URL-encoded


def celery_settings_from_outputs(outputs):
    """Return the Celery settings for a producer outside Docker, from the stack outputs: the JSON of
    ``pulumi stack output --json --show-secrets`` (a dict).  See env_from_outputs and celery_settings."""
    return celery_settings(env_from_outputs(outputs))
