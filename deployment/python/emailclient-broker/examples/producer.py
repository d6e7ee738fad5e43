"""A producer outside Docker: enqueue email tasks with the settings of a deployed stack.

    pulumi stack output --json --show-secrets --stack dev > outputs.json
    python3 examples/producer.py outputs.json --count 5

It imports nothing of the reference worker: only Celery and emailclient_broker.  The
tasks go to the email-service by name; it prints one JSON line with what came back.
"""

import argparse
import json
import sys

from celery import Celery

from emailclient_broker import ConfigError, celery_settings_from_outputs


def main(argv=None):
    parser = argparse.ArgumentParser(prog="producer.py")
    parser.add_argument("outputs", help="the JSON of `pulumi stack output --json --show-secrets`")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args(argv)
    with open(args.outputs, encoding="utf-8") as f:
        outputs = json.load(f)
    try:
        settings = celery_settings_from_outputs(outputs)
    except ConfigError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    app = Celery("producer")
    app.conf.update(settings)
    results = [
        app.send_task("emailworker.tasks.send_email", args=[f"user{i}@example.com", f"hello {i}"])
        for i in range(args.count)
    ]
    out = {"sent": len(results), "completed": 0, "errors": []}
    for result in results:
        try:
            result.get(timeout=args.timeout)
            out["completed"] += 1
        except Exception as exc:  # a timeout or a task failure: reported, never hidden
            out["errors"].append(f"{type(exc).__name__}: {exc}")
    print(json.dumps(out))
    return 0 if out["completed"] == out["sent"] else 1


if __name__ == "__main__":
    sys.exit(main())
