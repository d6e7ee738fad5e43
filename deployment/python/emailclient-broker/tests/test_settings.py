"""Unit tests of emailclient_broker, run by tests/celerytest (TestBrokerPackageUnitTests) with
Debian's python3-celery:  python3 -m unittest discover -s tests -t .
Nothing here connects to Redis: the real round trips are in tests/celerystack."""

import ssl
import unittest

from celery import Celery

import emailclient_broker
from emailclient_broker import ConfigError, celery_settings, celery_settings_from_outputs, env_from_outputs, workarounds

# A throwaway self-signed test certificate (public; its key was discarded).
TEST_CA = """-----BEGIN CERTIFICATE-----
MIIBnzCCAUWgAwIBAgIUJRNnWsL/gIwVZFZuwCsxiKvudWgwCgYIKoZIzj0EAwIw
JTEjMCEGA1UEAwwaZW1haWxjbGllbnQtYnJva2VyIHRlc3QgQ0EwHhcNMjYxMjA3
MTUxNDM2WhcNMzYxMjA0MTUxNDM2WjAlMSMwIQYDVQQDDBplbWFpbGNsaWVudC1i
cm9rZXIgdGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABH5BQDpcKNOw
QdzsBy5qlPaCaI2Kq9GrQw4njr+M0Go9T/uVMC3jTqqB5FrlCWXTECxEJLyhxMKA
XWJbmFHCT+6jUzBRMB0GA1UdDgQWBBQk6q+b9Df00h4pRifTAHdzJk0qxzAfBgNV
HSMEGDAWgBQk6q+b9Df00h4pRifTAHdzJk0qxzAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0gAMEUCICmYCQrVXhcdCJEKkPgki2asb/i37Dgg4aRYvIal0DME
AiEA6L4DHQuo6cI4Ex4yaj+Pv9j27JewjwFljD8QSU1D1q8=
-----END CERTIFICATE-----"""

STANDALONE = {
    "CELERY_BROKER_URL": "redis://celery:p%40ss@redis:6379/0",
    "CELERY_RESULT_BACKEND": "redis://celery:p%40ss@redis:6379/0",
}
SENTINELS = "sentinel://celery:pw@redis-sentinel-0:26379/0;sentinel://celery:pw@redis-sentinel-1:26379/0"
SENTINEL = {
    "CELERY_BROKER_URL": SENTINELS,
    "CELERY_RESULT_BACKEND": SENTINELS,
    "CELERY_SENTINEL_MASTER_NAME": "emailclient",
    "CELERY_SENTINEL_PASSWORD": "sentinel-pw",
}


def outputs(**extra):
    """Stack outputs as `pulumi stack output --json --show-secrets` prints them for dev."""
    out = {
        "celeryBrokerUrl": STANDALONE["CELERY_BROKER_URL"],
        "celeryResultBackend": STANDALONE["CELERY_RESULT_BACKEND"],
        "celeryEnv": {"CELERY_TASK_TIME_LIMIT": "600", "CELERY_TASK_SOFT_TIME_LIMIT": "500", "CELERY_BROKER_VISIBILITY_TIMEOUT": "900"},
        "redisHost": "redis",
        "redisPort": 6379,
        "redisHostAddress": "127.0.0.1:16379",
        "opsPassword": "ops-pw",
    }
    out.update(extra)
    return out


class Standalone(unittest.TestCase):
    def test_defaults_are_the_programs(self):
        s = celery_settings(STANDALONE)
        self.assertEqual(s["broker_url"], STANDALONE["CELERY_BROKER_URL"])
        self.assertEqual(s["task_time_limit"], 3600)
        self.assertEqual(s["broker_transport_options"]["visibility_timeout"], 7200)
        self.assertEqual(s["result_backend_transport_options"]["visibility_timeout"], 7200)
        self.assertTrue(s["task_acks_late"])
        self.assertNotIn("master_name", s["broker_transport_options"])
        self.assertNotIn("redis_username", s)
        self.assertNotIn("broker_use_ssl", s)

    def test_settings_are_celery_settings(self):
        app = Celery("check")
        app.conf.update(celery_settings(STANDALONE))  # Celery refuses unknown or mixed-style keys
        self.assertEqual(app.conf.task_serializer, "json")


class Sentinel(unittest.TestCase):
    def test_master_name_and_sentinel_password(self):
        s = celery_settings(SENTINEL)
        for key in ("broker_transport_options", "result_backend_transport_options"):
            self.assertEqual(s[key]["master_name"], "emailclient")
            self.assertEqual(s[key]["sentinel_kwargs"], {"password": "sentinel-pw", "socket_timeout": 5, "socket_connect_timeout": 5})

    def test_acl_user_for_the_result_backend_where_celery_drops_it(self):
        s = celery_settings(SENTINEL)
        if workarounds.sentinel_backend_drops_username():
            self.assertEqual(s["redis_username"], "celery")
            self.assertIn("celery#10013", workarounds.ACTIVE)
        else:
            self.assertNotIn("redis_username", s)


class TLS(unittest.TestCase):
    def test_ca_for_nodes_and_sentinels(self):
        s = celery_settings(dict(SENTINEL, CELERY_REDIS_TLS_CA=TEST_CA))
        self.assertEqual(s["broker_use_ssl"]["ssl_cert_reqs"], ssl.CERT_REQUIRED)
        self.assertIn("BEGIN CERTIFICATE", s["redis_backend_use_ssl"]["ssl_ca_data"])
        kwargs = s["broker_transport_options"]["sentinel_kwargs"]
        self.assertEqual((kwargs["ssl"], kwargs["ssl_cert_reqs"], kwargs["password"]), (True, "required", "sentinel-pw"))


class Refused(unittest.TestCase):
    """Bad input is refused before any connection, naming the variable and never echoing a secret."""

    CASES = [
        ("missing broker URL", {"CELERY_RESULT_BACKEND": STANDALONE["CELERY_RESULT_BACKEND"]}, "CELERY_BROKER_URL is required"),
        ("sentinel without master name", dict(SENTINEL, CELERY_SENTINEL_MASTER_NAME=""), "CELERY_SENTINEL_MASTER_NAME is required with sentinel:// URLs"),
        ("master name without sentinel", dict(STANDALONE, CELERY_SENTINEL_MASTER_NAME="emailclient"), "CELERY_SENTINEL_MASTER_NAME is set but"),
        ("malformed CA", dict(STANDALONE, CELERY_REDIS_TLS_CA="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"), "CELERY_REDIS_TLS_CA is not a valid PEM certificate"),
        ("not a CA", dict(STANDALONE, CELERY_REDIS_TLS_CA="secret-looking"), "CELERY_REDIS_TLS_CA must be a PEM certificate"),
        ("mixed schemes", dict(STANDALONE, CELERY_BROKER_URL="sentinel://:p%40ss@a:26379/0;redis://:p%40ss@b:6379/0"), "CELERY_BROKER_URL mixes schemes"),
        ("sentinel broker, plain results", dict(SENTINEL, CELERY_RESULT_BACKEND=STANDALONE["CELERY_RESULT_BACKEND"]), "must both use sentinel:// or neither"),
        ("unknown serializer", dict(STANDALONE, CELERY_TASK_SERIALIZER="yaml"), "CELERY_TASK_SERIALIZER must be one of json"),
        ("pickle accepted", dict(STANDALONE, CELERY_ACCEPT_CONTENT="json,pickle"), "CELERY_ACCEPT_CONTENT: unsupported content type 'pickle'"),
        ("bad port", dict(STANDALONE, CELERY_BROKER_URL="redis://celery:p%40ss@redis:port/0"), "CELERY_BROKER_URL is not a valid URL"),
        ("bad log level", dict(STANDALONE, CELERY_LOG_LEVEL="verbose"), "CELERY_LOG_LEVEL must be one of debug, info"),
        ("visibility timeout", dict(STANDALONE, CELERY_BROKER_VISIBILITY_TIMEOUT="60"), "CELERY_BROKER_VISIBILITY_TIMEOUT (60) must exceed"),
    ]

    def test_each_names_the_variable(self):
        for name, env, want in self.CASES:
            with self.subTest(name):
                with self.assertRaises(ConfigError) as ctx:
                    celery_settings(env)
                self.assertIn(want, str(ctx.exception))
                self.assertNotIn("p%40ss", str(ctx.exception))
                self.assertNotIn("secret-looking", str(ctx.exception))


SYNC = {"CELERY_SYNC_ENQUEUE_REPLICAS": "1", "CELERY_SYNC_ENQUEUE_TIMEOUT_MS": "250"}


class SocketTimeouts(unittest.TestCase):
    """Every connection gives up on a Redis or Sentinel that does not answer (frozen, cut off) instead
    of blocking for as long as the fault lasts."""

    def test_broker_backend_and_sentinels(self):
        from emailclient_broker.settings import SOCKET_TIMEOUT

        for name, env in [("redis://", STANDALONE), ("sentinel://", SENTINEL)]:
            with self.subTest(name):
                s = celery_settings(env)
                for key in ("broker_transport_options", "result_backend_transport_options"):
                    self.assertEqual(s[key]["socket_timeout"], SOCKET_TIMEOUT, key)
                    self.assertEqual(s[key]["socket_connect_timeout"], SOCKET_TIMEOUT, key)
                    if name == "sentinel://":
                        self.assertEqual(s[key]["sentinel_kwargs"]["socket_timeout"], SOCKET_TIMEOUT, key)
                        self.assertEqual(s[key]["sentinel_kwargs"]["socket_connect_timeout"], SOCKET_TIMEOUT, key)
                self.assertEqual((s["redis_socket_timeout"], s["redis_socket_connect_timeout"]), (SOCKET_TIMEOUT, SOCKET_TIMEOUT))
        s = celery_settings(dict(SENTINEL, CELERY_SENTINEL_PASSWORD=""))
        self.assertEqual(s["broker_transport_options"]["sentinel_kwargs"], {"socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": SOCKET_TIMEOUT})

    def test_longer_than_kombus_brpop(self):
        """The worker's BRPOP blocks on the server for kombu's timeout: a shorter socket timeout would
        break every idle poll."""
        import inspect

        from kombu.transport.redis import Channel

        from emailclient_broker.settings import SOCKET_TIMEOUT

        brpop = inspect.signature(Channel._brpop_start).parameters["timeout"].default
        self.assertGreaterEqual(SOCKET_TIMEOUT, 2 * brpop, f"kombu's BRPOP waits {brpop} s")

    def test_broker_waits_out_wait(self):
        """With synchronous enqueue the reply to WAIT takes up to its timeout: the broker's socket
        timeout is that much longer (rounded up to a second); the result backend's is not."""
        from emailclient_broker.settings import SOCKET_TIMEOUT

        for ms, extra in [("250", 1), ("1000", 1), ("1001", 2), ("60000", 60)]:
            with self.subTest(ms):
                s = celery_settings(dict(SENTINEL, CELERY_SYNC_ENQUEUE_REPLICAS="1", CELERY_SYNC_ENQUEUE_TIMEOUT_MS=ms))
                self.assertEqual(s["broker_transport_options"]["socket_timeout"], SOCKET_TIMEOUT + extra)
                self.assertEqual(s["result_backend_transport_options"]["socket_timeout"], SOCKET_TIMEOUT)

    def test_kombu_and_celery_pass_them_on(self):
        """kombu reads the transport options onto its channel; Celery's backend its redis_* settings."""
        from kombu.transport.redis import Channel

        for option in ("socket_timeout", "socket_connect_timeout", "sentinel_kwargs"):
            self.assertIn(option, Channel.from_transport_options + ("sentinel_kwargs",))
        app = Celery("check")
        app.conf.update(celery_settings(STANDALONE))
        params = app.backend.connparams
        self.assertEqual((params["socket_timeout"], params["socket_connect_timeout"]), (5.0, 5.0))


class SyncEnqueue(unittest.TestCase):
    """celery.syncEnqueue: the transport that waits, chosen through Celery's broker_transport."""

    def test_off_by_default(self):
        for env in (STANDALONE, SENTINEL, dict(SENTINEL, CELERY_SYNC_ENQUEUE_REPLICAS="0")):
            s = celery_settings(env)
            self.assertNotIn("broker_transport", s)
            self.assertNotIn("sync_enqueue_replicas", s["broker_transport_options"])

    def test_transport_by_scheme_and_options(self):
        for name, env, cls in [
            ("redis://", dict(STANDALONE, **SYNC), "Transport"),
            ("sentinel://", dict(SENTINEL, **SYNC), "SentinelTransport"),
        ]:
            with self.subTest(name):
                s = celery_settings(env)
                self.assertEqual(s["broker_transport"], f"emailclient_broker.transport:{cls}")
                options = s["broker_transport_options"]
                self.assertEqual((options["sync_enqueue_replicas"], options["sync_enqueue_timeout_ms"]), (1, 250))
                self.assertNotIn("sync_enqueue_replicas", s["result_backend_transport_options"], "results are not enqueued")

    def test_kombu_connects_with_it(self):
        """Celery's broker_transport wins over the URL's scheme, and the channel gets the options; the
        ;-separated Sentinel URLs stay the fallback list the Sentinel channel reads. Nothing connects."""
        from emailclient_broker import transport

        for name, env, cls, alt in [
            ("redis://", dict(STANDALONE, **SYNC), transport.Transport, 0),
            ("sentinel://", dict(SENTINEL, **SYNC), transport.SentinelTransport, 2),
        ]:
            with self.subTest(name):
                app = Celery("check")
                app.conf.update(celery_settings(env))
                conn = app.connection_for_write()
                self.assertIs(type(conn.transport), cls)
                self.assertEqual(len(conn.alt), alt)
                self.assertEqual(conn.hostname, "redis" if alt == 0 else "redis-sentinel-0")
                self.assertEqual(conn.userid, "celery")
                for option in transport.OPTIONS:  # kombu copies these onto each channel it opens
                    self.assertIn(option, cls.Channel.from_transport_options)
                    self.assertIn(option, conn.transport_options)

    def test_refused(self):
        for name, env, want in [
            ("timeout without replicas", dict(STANDALONE, CELERY_SYNC_ENQUEUE_TIMEOUT_MS="100"), "CELERY_SYNC_ENQUEUE_TIMEOUT_MS is set but"),
            ("replicas without timeout", dict(STANDALONE, CELERY_SYNC_ENQUEUE_REPLICAS="1"), "CELERY_SYNC_ENQUEUE_TIMEOUT_MS is required"),
            ("negative replicas", dict(STANDALONE, **dict(SYNC, CELERY_SYNC_ENQUEUE_REPLICAS="-1")), "CELERY_SYNC_ENQUEUE_REPLICAS must be >= 0"),
            ("wait forever", dict(STANDALONE, **dict(SYNC, CELERY_SYNC_ENQUEUE_TIMEOUT_MS="0")), "CELERY_SYNC_ENQUEUE_TIMEOUT_MS must be >= 1"),
            ("too long", dict(STANDALONE, **dict(SYNC, CELERY_SYNC_ENQUEUE_TIMEOUT_MS="60001")), "CELERY_SYNC_ENQUEUE_TIMEOUT_MS must be <= 60000"),
            ("not a number", dict(STANDALONE, **dict(SYNC, CELERY_SYNC_ENQUEUE_TIMEOUT_MS="1s")), "CELERY_SYNC_ENQUEUE_TIMEOUT_MS must be an integer"),
        ]:
            with self.subTest(name):
                with self.assertRaises(ConfigError) as ctx:
                    celery_settings(env)
                self.assertIn(want, str(ctx.exception))


class WaitingPut(unittest.TestCase):
    """The publish: LPUSH and WAIT sent together on one connection, and what it raises. A recording
    pool and connection stand in for redis-py's."""

    class Conn:
        def __init__(self, log, replies, fail_send=None):
            self.log, self.replies, self.fail_send = log, list(replies), fail_send

        def check_health(self):
            self.log.append(("check_health",))

        def pack_commands(self, commands):
            return [tuple(str(a) if not isinstance(a, str) else a for a in c) for c in commands]

        def send_packed_command(self, packed, check_health=True):
            self.log.append(("send", tuple(c[0] for c in packed), check_health))
            if self.fail_send:
                raise self.fail_send

        def read_response(self):
            reply = self.replies.pop(0)
            self.log.append(("read",))
            if isinstance(reply, Exception):
                raise reply
            return reply

        def disconnect(self):
            self.log.append(("disconnect",))

    def channel(self, replicas, replies, connect_error=None, fail_send=None):
        from contextlib import contextmanager

        from emailclient_broker import transport

        log = []
        test = self

        class Base:
            def _put(self, queue, message, **kwargs):
                log.append(("kombu put", queue))

        class Pool:
            def get_connection(self, command_name, *keys, **options):
                log.append(("get_connection", command_name))
                if connect_error:
                    raise connect_error
                return test.Conn(log, replies, fail_send)

            def release(self, conn):
                log.append(("release",))

        class Channel(transport._WaitingPut, Base):
            sync_enqueue_replicas, sync_enqueue_timeout_ms = replicas, 250

            def _get_message_priority(self, message, reverse=False):
                return 0

            def _q_for_pri(self, queue, pri):
                return queue

            @contextmanager
            def conn_or_acquire(self, client=None):
                class Client:
                    connection_pool = Pool()

                yield Client()

        return Channel(), log

    MESSAGE = {"body": "x", "properties": {}}

    def test_waits_on_the_same_connection(self):
        channel, log = self.channel(replicas=1, replies=[1, 1])
        channel._put("celery", self.MESSAGE)
        self.assertEqual(
            log,
            [("get_connection", "LPUSH"), ("check_health",), ("send", ("LPUSH", "WAIT"), False), ("read",), ("read",), ("release",)],
        )

    def test_too_few_replicas_raise(self):
        channel, _ = self.channel(replicas=2, replies=[1, 1])
        with self.assertRaises(emailclient_broker.EnqueueNotReplicatedError) as ctx:
            channel._put("celery", self.MESSAGE)
        self.assertNotIsInstance(ctx.exception, emailclient_broker.EnqueueOutcomeUnknownError)
        self.assertEqual((ctx.exception.acknowledged, ctx.exception.required, ctx.exception.timeout_ms), (1, 2, 250))
        self.assertIn("only 1 of 2 required replicas acknowledged it within 250 ms", str(ctx.exception))

    def test_refused_push_reads_both_replies(self):
        """NOREPLICAS (or OOM) refuses the LPUSH: that error reaches kombu, and the WAIT's reply is read
        too, so the pooled connection is not left a reply behind."""
        from redis.exceptions import ResponseError

        channel, log = self.channel(replicas=1, replies=[ResponseError("NOREPLICAS Not enough good replicas to write."), 0])
        with self.assertRaisesRegex(ResponseError, "NOREPLICAS"):
            channel._put("celery", self.MESSAGE)
        self.assertEqual(log.count(("read",)), 2)
        self.assertNotIn(("disconnect",), log)

    def test_timeout_after_sending_is_not_resent(self):
        """A socket timeout on a frozen or cut-off primary, after the task was sent: sent once, the
        connection dropped, and an error that neither redis-py nor Celery's publish retry re-sends."""
        from redis.exceptions import ConnectionError, TimeoutError

        for name, kwargs in [
            ("reply timed out", {"replies": [TimeoutError("Timeout reading from socket")]}),
            ("connection dropped", {"replies": [ConnectionError("Connection closed by server.")]}),
            ("send failed", {"replies": [], "fail_send": TimeoutError("Timeout writing to socket")}),
        ]:
            with self.subTest(name):
                channel, log = self.channel(replicas=1, **kwargs)
                with self.assertRaises(emailclient_broker.EnqueueOutcomeUnknownError) as ctx:
                    channel._put("celery", self.MESSAGE)
                self.assertIsInstance(ctx.exception, emailclient_broker.EnqueueNotReplicatedError)
                self.assertIsNone(ctx.exception.acknowledged)
                self.assertEqual([e for e in log if e[0] == "send"], [("send", ("LPUSH", "WAIT"), False)])
                self.assertIn(("disconnect",), log)
                self.assertEqual(log[-1], ("release",))
                self.assertIn("may or may not be enqueued", str(ctx.exception))

    def test_nothing_sent_stays_a_connection_error(self):
        """Failing to connect sent nothing: kombu's connection error, which Celery's publish retry retries.
        So does READONLY from a demoted primary, which redis-py's Sentinel connection raises as one."""
        from redis.exceptions import ConnectionError

        from emailclient_broker.transport import READONLY_AS_CONNECTION_ERROR

        channel, log = self.channel(replicas=1, replies=[], connect_error=ConnectionError("Error 111 connecting"))
        with self.assertRaises(ConnectionError) as ctx:
            channel._put("celery", self.MESSAGE)
        self.assertNotIsInstance(ctx.exception, emailclient_broker.EnqueueNotReplicatedError)
        self.assertFalse([e for e in log if e[0] == "send"])
        channel, log = self.channel(replicas=1, replies=[ConnectionError(READONLY_AS_CONNECTION_ERROR)])
        with self.assertRaises(ConnectionError) as ctx:
            channel._put("celery", self.MESSAGE)
        self.assertNotIsInstance(ctx.exception, emailclient_broker.EnqueueNotReplicatedError)

    def test_redis_py_pipelines_resend_on_timeout(self):
        """Why the publish does not use redis-py's pipeline: with retry_on_timeout (our transport option)
        a pipeline that timed out is executed once more on a new connection, a second LPUSH."""
        import redis
        from redis.exceptions import TimeoutError

        sent = []

        class Conn(redis.Connection):
            def connect(self):
                pass

            def send_packed_command(self, command, check_health=True):
                sent.append(command)

            def read_response(self, disable_decoding=False):
                raise TimeoutError("Timeout reading from socket")

            def disconnect(self):
                pass

        client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=Conn, retry_on_timeout=True))
        pipe = client.pipeline(transaction=False)
        pipe.lpush("celery", "x")
        pipe.wait(1, 250)
        with self.assertRaises(TimeoutError):
            pipe.execute()
        self.assertEqual(len(sent), 2, "redis-py re-sent the pipeline: if this changes, the pipeline could come back")

    def test_not_a_connection_error(self):
        """Celery's publish retry retries what kombu deems recoverable, for the Redis transport its
        connection_errors + channel_errors (ResponseError, hence NOREPLICAS, included): this one must
        reach the caller instead, or a retry would push a second copy of a task that may still run."""
        from kombu.transport.redis import get_redis_error_classes

        errors = get_redis_error_classes()
        self.assertTrue(errors.connection_errors, "kombu's redis error classes")
        for cls in (emailclient_broker.EnqueueNotReplicatedError, emailclient_broker.EnqueueOutcomeUnknownError):
            self.assertFalse(issubclass(cls, errors.connection_errors + errors.channel_errors), cls)

    def test_zero_replicas_is_kombus_publish(self):
        channel, log = self.channel(replicas=0, replies=[])
        channel._put("celery", self.MESSAGE)
        self.assertEqual(log, [("kombu put", "celery")])


class Outputs(unittest.TestCase):
    def test_standalone_is_pointed_at_the_published_address(self):
        env = env_from_outputs(outputs())
        self.assertEqual(env["CELERY_BROKER_URL"], "redis://celery:p%40ss@127.0.0.1:16379/0")
        self.assertEqual(env["CELERY_RESULT_BACKEND"], "redis://celery:p%40ss@127.0.0.1:16379/0")
        s = celery_settings_from_outputs(outputs())
        self.assertEqual((s["task_time_limit"], s["task_soft_time_limit"]), (600, 500), "celeryEnv is applied")

    def test_unpublished_urls_are_kept(self):
        out = outputs()
        del out["redisHostAddress"]
        self.assertEqual(env_from_outputs(out)["CELERY_BROKER_URL"], STANDALONE["CELERY_BROKER_URL"])

    def test_sentinel_and_tls_outputs(self):
        out = outputs(celeryBrokerUrl=SENTINELS, celeryResultBackend=SENTINELS, sentinelMasterName="emailclient",
                      sentinelPassword="sentinel-pw", redisTlsCa=TEST_CA)
        del out["redisHostAddress"]
        s = celery_settings_from_outputs(out)
        self.assertEqual(s["broker_transport_options"]["master_name"], "emailclient")
        self.assertTrue(s["broker_transport_options"]["sentinel_kwargs"]["ssl"])

    def test_refused(self):
        hidden = outputs(celeryBrokerUrl="[secret]")
        no_env = outputs()
        del no_env["celeryEnv"]
        for name, out, want in [
            ("hidden secret", hidden, "output celeryBrokerUrl is hidden: use `pulumi stack output --json --show-secrets`"),
            ("no celeryEnv", no_env, "output celeryEnv is missing"),
            ("not an object", ["x"], "outputs must be the JSON object"),
        ]:
            with self.subTest(name):
                with self.assertRaises(ConfigError) as ctx:
                    celery_settings_from_outputs(out)
                self.assertIn(want, str(ctx.exception))


class Workarounds(unittest.TestCase):
    def test_result_backend_retries_connection_errors(self):
        import redis
        from celery.backends.redis import RedisBackend

        celery_settings(STANDALONE)
        backend = RedisBackend(app=Celery("check"), url=STANDALONE["CELERY_BROKER_URL"])
        self.assertTrue(backend.exception_safe_to_retry(redis.exceptions.ConnectionError("gone")))
        self.assertFalse(backend.exception_safe_to_retry(ValueError("a bug")))

    def test_public_names(self):
        self.assertEqual(set(emailclient_broker.__all__) - set(dir(emailclient_broker)), set())


if __name__ == "__main__":
    unittest.main()
