"""Tasks of the reference email worker."""

import re
import socket
import time
import uuid

from celery import current_task

from emailworker import heartbeat
from emailworker.app import app

# Deliberately minimal: one @, no spaces, a dot in the domain.
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _receipt(to, subject):
    if not isinstance(to, str) or not ADDRESS.fullmatch(to):
        raise ValueError(f"invalid recipient address: {to!r}")
    if not isinstance(subject, str):
        raise ValueError("subject must be a string")
    hostname = getattr(current_task.request, "hostname", None) or socket.gethostname()
    return {
        "to": to,
        "subject": subject,
        "message_id": str(uuid.uuid4()),
        "worker": hostname,
    }


@app.task(name="emailworker.tasks.send_email")
def send_email(to, subject, body=""):
    """Pretend to send an email and return its receipt."""
    return _receipt(to, subject)


@app.task(name="emailworker.tasks.sleep_then_send")
def sleep_then_send(seconds, to, subject):
    """Sleep ``seconds`` (a slow SMTP server), then send like send_email."""
    time.sleep(float(seconds))
    return _receipt(to, subject)


@app.task(name="emailworker.tasks.ping")
def ping():
    """Healthcheck probe: proves that this worker consumes from Redis."""
    return {"pong": True, "worker": current_task.request.hostname}


@app.task(name=heartbeat.HEARTBEAT_TASK, ignore_result=True)
def heartbeat_task():
    """The worker's own heartbeat (see emailworker.heartbeat): taking it from
    Redis is what the worker records; running it does nothing."""
