"""Command-line client used by the tests and by operators.

    python3 -m emailworker.client send --count N --timeout S
    python3 -m emailworker.client enqueue --count N
    python3 -m emailworker.client collect --timeout S ID [ID ...]
    python3 -m emailworker.client produce --count N --interval S --threads K --prefix P
    python3 -m emailworker.client queue

``produce`` is a steady producer for fault tests: task i (id ``P-i``) is due at
i * interval seconds; K threads take them in turn, each waiting for its own
enqueue to return.  It records every enqueue's outcome (``outcomes``: i, start in seconds
after the producer's and as a Unix time, duration, and the error's class and
message when it was refused) instead of stopping at the first error.

``queue`` reads what the current primary holds for the default queue: its messages
(``queue``) and the unacknowledged hash's values (``unacked``), through the app's own
broker connection (so through the Sentinels, over TLS, as the workers see it).

Every mode prints exactly one JSON line on stdout.  Configuration errors print
``{"error": "..."}`` and exit 2; otherwise the exit code is 0 and the counts
say what happened.  The broker URL and password are never printed.
"""

import argparse
import json
import os
import socket
import sys
import time

MAX_ERRORS = 5
PROBE_DBS = 16


def _emit(payload):
    sys.stdout.write(json.dumps(payload, sort_keys=True) + "\n")
    sys.stdout.flush()


def _enqueue(tasks, args):
    if args.task == "send_email":
        task, task_args = tasks.send_email, lambda i: (args.to, f"{args.subject} #{i}", "body")
    else:
        task, task_args = tasks.sleep_then_send, lambda i: (args.seconds, args.to, f"{args.subject} #{i}")
    start = time.monotonic()
    results = [task.apply_async(args=task_args(i)) for i in range(args.count)]
    return results, time.monotonic() - start


def _produce(tasks, args):
    import threading

    outcomes = [None] * args.count
    start = time.monotonic()

    def run(first):
        for i in range(first, args.count, args.threads):
            due = start + i * args.interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            began = time.monotonic()
            outcome = {"i": i, "t": round(began - start, 4), "w": time.time()}
            try:
                tasks.send_email.apply_async(args=(args.to, f"{args.subject} #{i}", "body"), task_id=f"{args.prefix}-{i}")
            except Exception as exc:  # refused: NOREPLICAS, EnqueueNotReplicatedError, connection errors
                outcome["error"] = f"{type(exc).__name__}: {exc}"[:300]
            outcome["dt"] = round(time.monotonic() - began, 4)
            outcomes[i] = outcome

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "outcomes": outcomes,
        "sent": sum(1 for o in outcomes if "error" not in o),
        "enqueue_seconds": round(time.monotonic() - start, 4),
    }


def _collect(app, results, timeout, started):
    from celery.exceptions import TimeoutError as CeleryTimeout

    deadline = time.monotonic() + timeout
    out = {"completed": 0, "failed": 0, "pending": 0, "errors": [], "workers": {}, "pending_ids": [], "failed_ids": []}
    first_done = None
    last_done = None
    for res in results:
        remaining = deadline - time.monotonic()
        try:
            if remaining > 0:
                value = res.get(timeout=remaining, propagate=False, interval=0.05)
            elif res.ready():
                value = res.result
            else:
                raise CeleryTimeout()
        except CeleryTimeout:
            out["pending"] += 1
            out["pending_ids"].append(res.id)
            continue
        last_done = time.monotonic()
        if res.successful():
            out["completed"] += 1
            first_done = first_done or res.id
            worker = value.get("worker", "?") if isinstance(value, dict) else "?"
            out["workers"][worker] = out["workers"].get(worker, 0) + 1
        else:
            out["failed"] += 1
            out["failed_ids"].append(res.id)
            if len(out["errors"]) < MAX_ERRORS:
                out["errors"].append(f"{res.id}: {type(value).__name__}: {value}")
    out["roundtrip_seconds"] = round((last_done or time.monotonic()) - started, 4)
    if first_done:
        out.update(_inspect_result_key(app, first_done))
    return out


def _queue_state(app):
    options = app.conf.broker_transport_options or {}
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        queue = client.lrange(app.conf.task_default_queue, 0, -1)
        unacked = client.hvals(options.get("unacked_key", "unacked"))
    text = lambda values: [v.decode() if isinstance(v, bytes) else v for v in values]
    return {"queue": text(queue), "unacked": text(unacked)}


def _inspect_result_key(app, task_id):
    """Read one result key with redis-py from the same URL the backend uses."""
    import redis

    key = f"celery-task-meta-{task_id}"
    out = {"result_key": key}
    try:
        if app.conf.result_backend.startswith("sentinel://"):
            # The backend's own client asks the Sentinels for the current primary.
            client = app.backend.client
            db = int(app.backend.connparams.get("db", 0))
            out["result_db"] = db
            out["result_ttl"] = client.ttl(key)
            out["result_key_dbs"] = [db] if client.exists(key) else []
            return out
        client = redis.Redis.from_url(app.conf.result_backend, socket_timeout=5)
        db = int(client.connection_pool.connection_kwargs.get("db", 0))
        out["result_db"] = db
        out["result_ttl"] = client.ttl(key)
        out["result_key_dbs"] = []
        for probe in range(PROBE_DBS):
            # from_url lets the URL's /db win over a db= argument: build by hand.
            kwargs = dict(client.connection_pool.connection_kwargs, db=probe)
            other = redis.Redis(**kwargs)
            if other.exists(key):
                out["result_key_dbs"].append(probe)
            other.close()
        client.close()
    except redis.RedisError as exc:  # messages carry host:port, never the password
        out["result_key_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _parser():
    parser = argparse.ArgumentParser(prog="python3 -m emailworker.client")
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("send", "enqueue"):
        p = sub.add_parser(mode)
        p.add_argument("--count", type=int, default=1)
        p.add_argument("--task", choices=("send_email", "sleep_then_send"), default="send_email")
        p.add_argument("--seconds", type=float, default=1.0, help="sleep of sleep_then_send")
        p.add_argument("--to", default="user@example.com")
        p.add_argument("--subject", default="hello")
        if mode == "send":
            p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("collect")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("ids", nargs="+")
    sub.add_parser("queue")
    p = sub.add_parser("produce")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--interval", type=float, default=0.1, help="seconds between two tasks' due times")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prefix", default="task", help="task ids are PREFIX-i")
    p.add_argument("--to", default="user@example.com")
    p.add_argument("--subject", default="hello")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        from emailworker import app as appmod
        from emailworker import tasks
    except ValueError as exc:  # ConfigError, raised while the app is imported
        _emit({"error": str(exc)})
        return 2
    app = appmod.app
    out = {"mode": args.mode, "client": socket.gethostname()}
    began = time.monotonic()
    try:
        if args.mode == "produce":
            out.update(_produce(tasks, args))
        elif args.mode == "queue":
            out.update(_queue_state(app))
        elif args.mode == "collect":
            results = [app.AsyncResult(task_id) for task_id in args.ids]
            out.update(_collect(app, results, args.timeout, time.monotonic()))
            out["task_ids"] = args.ids
        else:
            started = time.monotonic()
            results, enqueue_seconds = _enqueue(tasks, args)
            out["sent"] = len(results)
            out["task_ids"] = [r.id for r in results]
            out["enqueue_seconds"] = round(enqueue_seconds, 4)
            if args.mode == "send":
                out.update(_collect(app, results, args.timeout, started))
    except Exception as exc:  # broker unreachable, auth refused, ...
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["error_class"] = type(exc).__name__
        out["elapsed_seconds"] = round(time.monotonic() - began, 4)
        _emit(out)
        return 1
    _emit(out)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The JSON line is out and every task was published: skip interpreter teardown.
    # A result still pending when the client gave up stays registered with the
    # backend, and its __del__ would unsubscribe through a Sentinel pool that
    # teardown may have freed already: redis-py then printed a ReferenceError
    # traceback after the JSON line (redis/redis-py#2767).
    os._exit(code)
