"""Integration tests: real RabbitMQ (nameko's fixtures give each test a throwaway
vhost) and the real PostgreSQL test database (``make test`` points the settings at
``recaudo_test``; migrations are applied once per session)."""
import os

import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from nameko.web.server import WebServer
from sqlalchemy import create_engine

from recaudo_common import migrations
from recaudo_common.config import settings
from recaudo_common.queue_type import declare_queues_as_configured

# the services' queues of the type RECAUDO_QUEUE_TYPE says, as run.py does for a service
declare_queues_as_configured()


@pytest.fixture(scope="session", autouse=True)
def migrated_database():
    migrations.upgrade()


@pytest.fixture(autouse=True)
def no_startup_aging(request, monkeypatch):
    """The portfolio service snapshots every institution's aging when it starts (refreshing
    days past due and stages first): a test that starts it to test something else would
    see its own accounts changed under it, so the timer finds nothing to take unless the
    test is marked ``startup_aging`` (the real finder stays at ``.__wrapped__``)."""
    if request.node.get_closest_marker("startup_aging") is None:
        from portfolio import aging

        def nothing_missing(session, now):
            return []

        nothing_missing.__wrapped__ = aging.missing_snapshots
        monkeypatch.setattr(aging, "missing_snapshots", nothing_missing)


@pytest.fixture(scope="session")
def engine():
    engine = create_engine(settings().database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def probe_schemas(engine):
    """The outbox probes' schemas (``probes.py``), empty for the test and dropped after."""
    from .probes import create_probe_schemas, drop_probe_schemas

    create_probe_schemas(engine)
    yield
    drop_probe_schemas(engine)


@pytest.fixture
def rpc_proxy(rabbit_config):
    """A factory of started cluster proxies on this test's vhost."""
    started = []

    def make(context_data=None, timeout=10):
        proxy = ClusterRpcProxy(rabbit_config, context_data=context_data, timeout=timeout)
        started.append(proxy)
        return proxy.start()

    yield make
    for proxy in started:
        proxy.stop()


#: the integration suite's own S3 server (the e2e stack's is on 19000); another port lets
#: two checkouts run the suite side by side
S3_TEST_PORT = int(os.environ.get("RECAUDO_S3_TEST_PORT", "19001"))


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 (s3rver, data under var/test/s3-int) for tests that store objects: started
    here unless something already listens on its port, and the settings, storage client and
    bucket caches pointed at it (settings() is cached, so the cache is cleared)."""
    import subprocess
    import time
    from pathlib import Path

    from recaudo_common import storage

    root = Path(__file__).resolve().parents[2]
    endpoint = f"http://127.0.0.1:{S3_TEST_PORT}"
    proc = None
    if not _listening(S3_TEST_PORT):
        data = root / settings().var_dir / "s3-int"
        data.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [str(root / "node_modules" / ".bin" / "s3rver"), "-d", str(data),
             "-a", "127.0.0.1", "-p", str(S3_TEST_PORT), "--silent"],
            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 20
        while not _listening(S3_TEST_PORT):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("s3rver did not start on port %d" % S3_TEST_PORT)
            time.sleep(0.1)
    previous = os.environ.get("RECAUDO_S3_ENDPOINT")
    os.environ["RECAUDO_S3_ENDPOINT"] = endpoint

    def reset():
        settings.cache_clear()
        storage.client.cache_clear()
        storage.public_client.cache_clear()
        storage.bucket.cache_clear()

    reset()
    try:
        storage.bucket()  # created on first use
        yield endpoint
    finally:
        if previous is None:
            os.environ.pop("RECAUDO_S3_ENDPOINT", None)
        else:
            os.environ["RECAUDO_S3_ENDPOINT"] = previous
        reset()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


#: the integration suite's own IMAP server (dovecot) and SMTP sink (aiosmtpd); other
#: ports than the e2e stack's, settable so two checkouts can run side by side
IMAP_TEST_PORT = int(os.environ.get("RECAUDO_IMAP_TEST_PORT", "19143"))
SMTP_TEST_PORT = int(os.environ.get("RECAUDO_SMTP_TEST_PORT", "19025"))


@pytest.fixture(scope="session")
def imap_server():
    """A real dovecot on 127.0.0.1 (data under <var>/mail-int): ``server.add_user(addr,
    password)`` makes a mailbox account; ``server.port``."""
    import shutil
    from pathlib import Path

    from messaging import localmail

    root = Path(__file__).resolve().parents[2]
    directory = root / settings().var_dir / "mail-int"
    shutil.rmtree(directory, ignore_errors=True)
    users = {"setup@recaudo.test": "setup-password"}
    proc = localmail.start_dovecot(directory, IMAP_TEST_PORT, users)

    class Server:
        port = IMAP_TEST_PORT

        @staticmethod
        def add_user(address, password):
            users[address] = password
            localmail.write_dovecot(directory, IMAP_TEST_PORT, users)  # passwd-file: read per login

    try:
        yield Server()
    finally:
        localmail.stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def smtp_sink():
    """A real aiosmtpd sink on 127.0.0.1 keeping each message as a file: ``sink.messages()``
    answers them parsed (oldest first), ``sink.clear()``."""
    import shutil
    from email import policy
    from email.parser import BytesParser
    from pathlib import Path

    from messaging import localmail

    root = Path(__file__).resolve().parents[2]
    directory = root / settings().var_dir / "smtp-int"
    shutil.rmtree(directory, ignore_errors=True)
    proc = localmail.start_sink(directory, SMTP_TEST_PORT)

    class Sink:
        port = SMTP_TEST_PORT

        @staticmethod
        def messages():
            files = sorted(directory.glob("*.eml"), key=lambda p: int(p.name.split("-")[0]))
            return [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in files]

        @staticmethod
        def clear():
            for path in directory.glob("*.eml"):
                path.unlink()

    try:
        yield Sink()
    finally:
        localmail.stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


#: instances of each service the integration tests start (deploy/test.sh runs a set of
#: modules with 2: every container a test starts gets a twin on the same queues and
#: database, so RPCs and events land on either, as with ``make up SCALE=...``)
TEST_INSTANCES = int(os.environ.get("RECAUDO_TEST_INSTANCES", "1"))


@pytest.fixture
def instances():
    """service name -> every container started for it in this test (all its instances)."""
    return {}


@pytest.fixture
def container_factory(container_factory, instances, request):
    """nameko's factory, starting ``instances`` containers of each service where it was
    one: the test's container, whose start, stop and kill act on its twins too. A
    ``@pytest.mark.instances(n)`` on a test says how many, whatever the setting."""
    marker = request.node.get_closest_marker("instances")
    count = marker.args[0] if marker else TEST_INSTANCES

    def make(service_cls, config):
        first = container_factory(service_cls, config)
        twins = [container_factory(service_cls, config) for _ in range(count - 1)]
        instances.setdefault(first.service_name, []).extend([first, *twins])
        for action in ("start", "stop", "kill") if twins else ():
            _also_on_twins(first, twins, action)
        return first

    return make


def _also_on_twins(container, twins, action):
    own = getattr(container, action)

    def both(*args, **kwargs):
        own(*args, **kwargs)
        for twin in twins:
            getattr(twin, action)(*args, **kwargs)

    setattr(container, action, both)


#: the integration suite's own Kannel (sendsms on this port, four more after it) and the
#: port messaging's SMS callback listener takes in every messaging container of the suite
KANNEL_TEST_PORT = int(os.environ.get("RECAUDO_KANNEL_TEST_PORT", "19013"))
SMS_CALLBACK_TEST_PORT = int(os.environ.get("RECAUDO_SMS_CALLBACK_TEST_PORT", "19090"))
#: the token the test Kannel's get-url carries (an institution's ``inbound_token``)
KANNEL_TEST_TOKEN = "token-de-prueba-sms"


def _kill_closing_its_socket(self):
    """nameko's test teardown kills containers, and a killed WebServer keeps listening (with
    SO_REUSEPORT, as eventlet binds): the next test's messaging would share its port with
    dead sockets that reset Kannel's callbacks. Killed, it closes its socket as on stop."""
    if getattr(self, "_sock", None) is not None:
        self._is_accepting = False
        self._sock.close()


WebServer.kill = _kill_closing_its_socket


@pytest.fixture
def rabbit_config(rabbit_config):
    """nameko's per-test broker config, with messaging's HTTP listener (its SMS callbacks)
    on the suite's own port rather than nameko's default 0.0.0.0:8000."""
    return {**rabbit_config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{SMS_CALLBACK_TEST_PORT}"}


@pytest.fixture(scope="session")
def kannel_server():
    """Debian's Kannel (bearerbox, smsbox) with the fakesmsc test SMSC, configured under
    <var>/kannel-int and calling back messaging on SMS_CALLBACK_TEST_PORT; the settings
    point dlr-urls there too."""
    from pathlib import Path
    from types import SimpleNamespace

    from messaging import kannel

    root = Path(__file__).resolve().parents[2]
    directory = root / settings().var_dir / "kannel-int"
    if directory.exists():
        for old in directory.glob("*.log"):
            old.unlink()
    callback = f"http://127.0.0.1:{SMS_CALLBACK_TEST_PORT}"
    procs = kannel.start(directory, KANNEL_TEST_PORT, callback, KANNEL_TEST_TOKEN)
    previous = os.environ.get("RECAUDO_SMS_CALLBACK_URL")
    os.environ["RECAUDO_SMS_CALLBACK_URL"] = callback
    settings.cache_clear()
    try:
        yield SimpleNamespace(
            port=KANNEL_TEST_PORT, token=KANNEL_TEST_TOKEN, directory=directory,
            sendsms_url=f"http://127.0.0.1:{KANNEL_TEST_PORT}/cgi-bin/sendsms",
            username=kannel.USER, password=kannel.PASSWORD,
            inject=lambda sender, receiver, body: kannel.inject(KANNEL_TEST_PORT, sender,
                                                               receiver, body),
            received=lambda: kannel.received(directory))
    finally:
        if previous is None:
            os.environ.pop("RECAUDO_SMS_CALLBACK_URL", None)
        else:
            os.environ["RECAUDO_SMS_CALLBACK_URL"] = previous
        settings.cache_clear()
        kannel.stop_all(procs)
