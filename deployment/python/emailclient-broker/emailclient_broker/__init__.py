"""Celery settings for the emailclient-infra Redis broker, in one call.

The Pulumi program hands its email-service an env contract (CELERY_* variables,
the table in docs/OPERATIONS.md) and exports the same facts as stack outputs.
This package is the one place that turns either into Celery settings, for every
topology (standalone, Sentinel, TLS across hosts)::

    from celery import Celery
    from emailclient_broker import celery_settings

    app = Celery("emails")
    app.conf.update(celery_settings())          # in a container the program runs

    # a producer outside Docker, from `pulumi stack output --json --show-secrets`:
    app.conf.update(celery_settings_from_outputs(json.load(open("outputs.json"))))

Bad input raises ConfigError naming the variable (or output) before anything
connects.  With synchronous enqueue (CELERY_SYNC_ENQUEUE_REPLICAS), an enqueue that
fewer replicas acknowledged in time raises EnqueueNotReplicatedError: the task is
not safe from a failover; EnqueueOutcomeUnknownError (one of them) when the connection failed after
the task was sent.  Every connection has a socket timeout (SOCKET_TIMEOUT), so a frozen or cut-off
Redis raises instead of blocking.  wait_for_broker(app) blocks a worker until the broker answers
(for a worker started alongside Redis).  Dependencies: celery, kombu and redis only.
"""

from emailclient_broker.settings import (
    ENV_VARIABLES,
    LOG_LEVELS,
    ConfigError,
    celery_settings,
    celery_settings_from_outputs,
    env_from_outputs,
    log_level,
)
from emailclient_broker.ready import BrokerNotReadyError, wait_for_broker
from emailclient_broker.transport import EnqueueNotReplicatedError, EnqueueOutcomeUnknownError

__all__ = [
    "BrokerNotReadyError",
    "ENV_VARIABLES",
    "LOG_LEVELS",
    "ConfigError",
    "EnqueueNotReplicatedError",
    "EnqueueOutcomeUnknownError",
    "celery_settings",
    "celery_settings_from_outputs",
    "env_from_outputs",
    "log_level",
    "wait_for_broker",
]
