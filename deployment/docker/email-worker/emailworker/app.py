"""Celery app of the reference email service, configured only from the environment.

Its Celery settings come from emailclient_broker (deployment/python/emailclient-broker),
the one place that reads the program's env contract, as a user's own email-service
or producer does.  Only what the reference worker's healthcheck needs is added here.
Every variable is validated when the module is imported, so a worker or client with a
bad environment fails at once with an error naming the variable.
"""

from celery import Celery, signals

from emailclient_broker import ConfigError, celery_settings, wait_for_broker

__all__ = ["ConfigError", "app"]

app = Celery("emailworker", include=["emailworker.tasks"])
app.conf.update(
    celery_settings(),
    # Each worker also consumes <hostname>.dq, so the healthcheck can prove that
    # this very worker still takes tasks from Redis.
    worker_direct=True,
    worker_send_task_events=False,
)


@signals.worker_init.connect
def _broker_first(**_):
    """The program may start this worker alongside Redis (emailService.waitForRedis false): consume
    only once the broker answers an authenticated PING and accepts a write (a Sentinel primary refuses
    writes until a replica has synced, and the worker's first write would end it), polled every 0.2s
    rather than Celery's 2s start-up retry. After 60s Celery logs the BrokerNotReadyError (it never
    lets a signal handler's error stop the worker) and its own retry takes over."""
    wait_for_broker(app)
