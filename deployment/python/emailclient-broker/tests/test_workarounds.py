"""kombu#305's workaround against a real redis-server (Debian's, as the broker tiers use)."""

import socket
import subprocess
import tempfile
import time
import unittest

import kombu

from emailclient_broker import workarounds


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Redis:
    """A throwaway redis-server on port, without persistence; args are more redis-server options."""

    def __init__(self, port, *args):
        self.dir = tempfile.mkdtemp()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir, *args],
            stdout=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class UnackedRecordKept(unittest.TestCase):
    def test_a_message_whose_record_failed_goes_back_on_its_queue(self):
        workarounds.apply()
        self.assertIn("kombu#305", workarounds.ACTIVE)
        port = _free_port()
        url = f"redis://127.0.0.1:{port}/0"
        queue = kombu.Queue("emails", kombu.Exchange("emails", type="direct"), routing_key="emails")
        server = _Redis(port)
        try:
            with kombu.Connection(url) as conn:
                conn.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key="emails", declare=[queue],
                                        headers={"id": "task-1"})
                channel = conn.default_channel
                # Take it off the queue, as the worker's BRPOP does; then the primary goes away before
                # the worker records it in the unacknowledged hash.
                message = channel.basic_get("emails", no_ack=True)
                self.assertIsNotNone(message)
                server.stop()
                with self.assertRaises(channel.connection_errors):
                    channel.qos.append(message, message.delivery_tag)
                self.assertEqual(len(workarounds._UNRECORDED), 1)
            # The new primary (a fresh server on the same address): the next poll puts it back.
            server = _Redis(port)
            with kombu.Connection(url) as conn:
                got = []
                conn.Consumer([queue], callbacks=[lambda body, m: (got.append((body, m.headers)), m.ack())]).consume()
                conn.drain_events(timeout=5)
                self.assertEqual(got, [({"n": 1}, {"id": "task-1", "redelivered": True})])
                self.assertEqual(workarounds._UNRECORDED, [])
        finally:
            server.stop()


class DisconnectTakesTheError(unittest.TestCase):
    def test_event_loop_connections_accept_the_error(self):
        workarounds.apply()
        port = _free_port()
        server = _Redis(port)
        try:
            with kombu.Connection(f"redis://127.0.0.1:{port}/0") as conn:
                channel = conn.default_channel
                cls = channel._connparams(asynchronous=True)["connection_class"]
                connection = cls(host="127.0.0.1", port=port)
                connection.connect()
                # What redis-py does when a connect times out: disconnect(error).
                connection.disconnect(socket.timeout("timed out"))
                self.assertIsNone(connection._sock)
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
