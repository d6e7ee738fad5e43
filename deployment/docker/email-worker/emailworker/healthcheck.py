"""Worker healthcheck: exit 0 only if this worker consumes tasks from Redis.

    python3 -m emailworker.healthcheck [--hostname email-worker@HOST] [--timeout 10]

It sends a ``ping`` task to the worker's own direct queue (``<hostname>.dq``,
see ``worker_direct`` in app.py) and waits for its result.  That proves the
whole path: the worker is connected, its consumer takes messages from Redis
and the result backend works.  ``celery inspect ping`` is not enough: with
kombu 5.2.4 a worker can answer control messages yet consume no tasks after
a broker restart (celery#8030).  Suitable as a Docker HEALTHCHECK; the exit
code is 0 (healthy) or 1 (unhealthy), with one line on stdout.
"""

import argparse
import socket
import sys
import time

DEFAULT_NAME = "email-worker"


def default_hostname():
    """Node name the Docker image gives its worker: email-worker@<container>."""
    return f"{DEFAULT_NAME}@{socket.gethostname()}"


def check(hostname, timeout):
    from celery.utils.nodenames import worker_direct

    from emailworker import tasks

    start = time.monotonic()
    # The probe expires, so a stalled worker that recovers does not run a
    # backlog of stale probes; its result is deleted once read.
    result = tasks.ping.apply_async(queue=worker_direct(hostname), expires=timeout)
    try:
        reply = result.get(timeout=timeout, interval=0.1)
    finally:
        result.forget()
    if not isinstance(reply, dict) or reply.get("worker") != hostname:
        raise RuntimeError(f"unexpected probe reply {reply!r}")
    return time.monotonic() - start


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m emailworker.healthcheck")
    parser.add_argument("--hostname", default=None, help="worker node name (default email-worker@<hostname>)")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    hostname = args.hostname or default_hostname()
    try:
        seconds = check(hostname, args.timeout)
    except Exception as exc:  # config error, broker down, stalled consumer, timeout
        print(f"unhealthy: {hostname}: {type(exc).__name__}: {exc}")
        return 1
    print(f"healthy: {hostname} consumed a probe task in {seconds:.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
