"""wait_for_broker against a real redis-server (Debian's, as the broker tiers use)."""

import threading
import time
import unittest

from celery import Celery

from emailclient_broker import BrokerNotReadyError, wait_for_broker
from tests.test_workarounds import _free_port, _Redis

PASSWORD = "ready-test-password-0123456789"


def _app(port, password):
    app = Celery("ready-test")
    app.conf.update(broker_url=f"redis://:{password}@127.0.0.1:{port}/0",
                    broker_transport_options={"socket_timeout": 1, "socket_connect_timeout": 1})
    return app


class WaitForBroker(unittest.TestCase):
    def test_returns_once_a_late_server_answers(self):
        port = _free_port()
        servers = []
        # The server starts a second after the worker began to wait, as Redis does beside a worker
        # started alongside it.
        starter = threading.Timer(1.0, lambda: servers.append(_Redis(port, "--requirepass", PASSWORD)))
        starter.start()
        try:
            started = time.monotonic()
            waited = wait_for_broker(_app(port, PASSWORD), timeout=20)
            self.assertGreaterEqual(waited, 1.0)
            self.assertLessEqual(waited, time.monotonic() - started)
        finally:
            starter.join()
            for s in servers:
                s.stop()

    def test_a_wrong_password_is_an_error_that_names_the_cause_not_the_url(self):
        port = _free_port()
        server = _Redis(port, "--requirepass", PASSWORD)
        try:
            wrong = "not-the-password-9876543210"
            started = time.monotonic()
            with self.assertRaises(BrokerNotReadyError) as ctx:
                wait_for_broker(_app(port, wrong), timeout=1, interval=0.2)
            # The deadline holds, give or take one attempt (its socket timeout is 1s): kombu's own
            # retries, 2s apart, are not used.
            self.assertLess(time.monotonic() - started, 1 + 1)
            message = str(ctx.exception)
            self.assertRegex(message, r"AuthenticationError|WRONGPASS|invalid password")
            self.assertNotIn(wrong, message)
            self.assertNotIn(PASSWORD, message)
            # The right one answers at once.
            self.assertLess(wait_for_broker(_app(port, PASSWORD), timeout=5), 5)
        finally:
            server.stop()

    def test_a_primary_refusing_writes_is_not_ready_until_its_replica_syncs(self):
        # A Sentinel topology's primary (min-replicas-to-write 1) answers PING before its replica has
        # synced, but refuses writes until then: the worker's first write would end it.
        primary_port, replica_port = _free_port(), _free_port()
        primary = _Redis(primary_port, "--requirepass", PASSWORD, "--min-replicas-to-write", "1")
        replicas = []
        try:
            with self.assertRaises(BrokerNotReadyError) as ctx:
                wait_for_broker(_app(primary_port, PASSWORD), timeout=0.5, interval=0.1)
            self.assertIn("NOREPLICAS", str(ctx.exception))
            starter = threading.Timer(1.0, lambda: replicas.append(
                _Redis(replica_port, "--replicaof", "127.0.0.1", str(primary_port), "--masterauth", PASSWORD)))
            starter.start()
            started = time.monotonic()
            waited = wait_for_broker(_app(primary_port, PASSWORD), timeout=20)
            starter.join()
            self.assertGreaterEqual(waited, 1.0, "ready only once the replica is there")
            self.assertLessEqual(waited, time.monotonic() - started)
        finally:
            for s in [primary, *replicas]:
                s.stop()

    def test_a_user_without_del_is_checked_by_ping_alone(self):
        port = _free_port()
        server = _Redis(port, "--user", "reader", "on", ">" + PASSWORD, "~*", "&*", "+@all", "-del")
        try:
            app = _app(port, PASSWORD)
            app.conf.broker_url = f"redis://reader:{PASSWORD}@127.0.0.1:{port}/0"
            self.assertLess(wait_for_broker(app, timeout=5), 5)
        finally:
            server.stop()

    def test_no_server_times_out(self):
        with self.assertRaises(BrokerNotReadyError) as ctx:
            wait_for_broker(_app(_free_port(), PASSWORD), timeout=0.5, interval=0.1)
        self.assertRegex(str(ctx.exception), "Connection refused")


if __name__ == "__main__":
    unittest.main()
