"""What an outage of a dependency becomes: ``Unavailable`` naming it in a service, a 503
with ``{"error": {"code": "unavailable"}}`` at the gateway (never a 500), and the
heartbeat that liveness probes read. The outages themselves are in tests/faults."""
import sys

import amqp.exceptions
import kombu.exceptions
import psycopg
import pytest
import sqlalchemy.exc
import urllib3.exceptions
from flask import Blueprint
from nameko.exceptions import RpcTimeout, UnknownService

from gateway.app import create_app
from recaudo_common import heartbeat, resilience
from recaudo_common.errors import InvalidInput, Unavailable


def _database_down():
    try:
        raise psycopg.OperationalError("connection refused")
    except psycopg.OperationalError as exc:
        return sqlalchemy.exc.OperationalError("SELECT 1", {}, exc)


OUTAGES = [
    (_database_down(), "database"),
    (psycopg.errors.AdminShutdown("terminating connection"), "database"),
    (sqlalchemy.exc.InternalError("INSERT", {}, psycopg.errors.ReadOnlySqlTransaction(
        "cannot execute INSERT in a read-only transaction")), "database"),
    (kombu.exceptions.OperationalError("[Errno 111] ECONNREFUSED"), "broker"),
    (amqp.exceptions.ConnectionForced("shutdown"), "broker"),
    (ConnectionRefusedError(111, "refused"), "broker"),
    (urllib3.exceptions.MaxRetryError(None, "/recaudo-documents"), "object store"),
    # a service asking another one that is not bound yet (a broker back as a fresh node)
    (UnknownService("portfolio"), "service"),
    (RpcTimeout(30), "service"),
]


@pytest.mark.parametrize("exc,what", OUTAGES)
def test_an_outage_names_what_is_down(exc, what):
    assert resilience.unavailable(exc) == what
    error = resilience.as_unavailable((type(exc), exc, None))[1]
    assert isinstance(error, Unavailable) and error.fields == {"unavailable": what}


@pytest.mark.parametrize("exc", [ValueError("bug"), InvalidInput("x"), KeyError("k")])
def test_ordinary_errors_stay_what_they_are(exc):
    assert resilience.unavailable(exc) is None
    assert resilience.as_unavailable((type(exc), exc, None))[1] is exc


def _raised(make):
    try:
        make()
    except Exception as exc:     # noqa: BLE001 - the raised error is the point
        return exc


def _refused_then(error_from):
    try:
        raise ConnectionRefusedError(111, "refused")     # e.g. a mail server, not the broker
    except ConnectionRefusedError as exc:
        if error_from:
            raise InvalidInput("El servidor no responde") from exc
        raise ValueError("bug") from None


@pytest.mark.parametrize("make", [lambda: _refused_then(True), lambda: _refused_then(False)],
                         ids=["a domain error raised from a refused connection",
                              "a context dropped with from None"])
def test_what_a_service_answered_itself_is_not_an_outage(make):
    exc = _raised(make)
    assert resilience.unavailable(exc) is None
    assert resilience.as_unavailable((type(exc), exc, None))[1] is exc


@pytest.fixture
def app():
    app = create_app(testing=True)
    bp = Blueprint("outage", __name__)
    raised = {"broker": kombu.exceptions.OperationalError("[Errno 111] ECONNREFUSED"),
              "socket": ConnectionResetError(104, "reset"),
              "timeout": RpcTimeout(3),
              "database": Unavailable.of("database")}

    @bp.get("/outage/<kind>")
    def outage(kind):
        raise raised[kind]

    app.register_blueprint(bp)
    return app


@pytest.mark.parametrize("kind,what", [("broker", "broker"), ("socket", "broker"),
                                       ("timeout", "service"), ("database", "database")])
def test_the_gateway_answers_an_outage_503_naming_it(app, kind, what):
    response = app.test_client().get(f"/outage/{kind}")
    assert response.status_code == 503
    error = response.json["error"]
    assert error["code"] == "unavailable" and error["fields"] == {"unavailable": what}


def test_heartbeat_age(tmp_path):
    path = tmp_path / "run" / "auth.heartbeat"
    assert heartbeat.heartbeat_age(str(path)) is None
    heartbeat.beat(str(path))
    assert 0 <= heartbeat.heartbeat_age(str(path)) < 60


class _Message:
    def __init__(self, error):
        self.channel = type("Channel", (), {"connection": True})()
        self.error = error

    def ack(self):
        raise self.error

    requeue = ack


def test_settling_a_message_on_a_lost_connection_leaves_it_to_the_broker():
    """nameko caught only py-amqp's ConnectionError: ECONNRESET killed the container."""
    from nameko.messaging import QueueConsumer

    resilience.tune_consumers()
    consumer = QueueConsumer.__new__(QueueConsumer)
    for settle in (consumer.ack_message, consumer.requeue_message):
        settle(_Message(ConnectionResetError(104, "Connection reset by peer")))
        with pytest.raises(ValueError):     # anything else is still a bug, and says so
            settle(_Message(ValueError("bug")))
