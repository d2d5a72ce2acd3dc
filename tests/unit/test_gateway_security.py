"""The gateway's security basics without a broker: headers on every answer, the client's
address and TLS behind trusted proxies only, Retry-After on every 429."""
import pytest
from flask import Blueprint, jsonify

from gateway import security
from gateway.app import create_app
from recaudo_common import errors
from recaudo_common.config import Settings

PROXY, CLIENT, FORGED = "10.0.0.5", "198.51.100.7", "203.0.113.99"


def make_app(**settings):
    app = create_app(Settings(**settings), testing=True)
    bp = Blueprint("probe", __name__)

    @bp.get("/probe/address")
    def address():
        return jsonify(address=security.client_address(), tls=security.served_over_tls())

    @bp.get("/probe/throttled/<int:seconds>")
    def throttled(seconds):
        raise errors.Throttled("Espere", {}, seconds)

    app.register_blueprint(bp)
    return app


@pytest.fixture(scope="module")
def client():
    return make_app().test_client()


@pytest.mark.parametrize("path", ["/", "/no/such/page", "/static/recaudo.css",
                                  "/api/v1/openapi.json", "/api/v1/docs", "/login"])
def test_every_answer_has_the_security_headers(client, path):
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    assert "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in headers      # plain HTTP here


def test_the_object_store_is_reachable_from_pages():
    csp = make_app(s3_public_endpoint="https://files.example.mx/bucket").test_client() \
        .get("/").headers["Content-Security-Policy"]
    assert "connect-src 'self' https://files.example.mx;" in csp


def test_anonymous_public_answers_may_be_cached_a_new_cookie_not(client):
    assert "no-store" not in client.get("/static/recaudo.css").headers.get("Cache-Control", "")
    login = client.application.test_client().get("/login")   # sets the login CSRF cookie
    assert login.headers["Cache-Control"] == "no-store"


def test_every_429_says_when_to_retry(client):
    response = client.get("/probe/throttled/42")
    assert response.status_code == 429 and response.headers["Retry-After"] == "42"
    assert client.get("/probe/throttled/0").headers["Retry-After"] == "60"


def test_forwarded_headers_are_ignored_from_anyone_but_a_trusted_proxy():
    client = make_app().test_client()
    answer = client.get("/probe/address", headers={"X-Forwarded-For": FORGED,
                                                   "X-Forwarded-Proto": "https"},
                        environ_base={"REMOTE_ADDR": CLIENT}).json
    assert answer == {"address": CLIENT, "tls": False}


def test_behind_a_trusted_proxy_the_client_is_the_nearest_untrusted_hop():
    client = make_app(trusted_proxies="10.0.0.0/8, 192.0.2.1").test_client()

    def ask(forwarded, proto="http"):
        return client.get("/probe/address", environ_base={"REMOTE_ADDR": PROXY},
                          headers={"X-Forwarded-For": forwarded, "X-Forwarded-Proto": proto}).json

    # what the client wrote itself (FORGED) is left of what our proxies appended
    assert ask(f"{FORGED}, {CLIENT}") == {"address": CLIENT, "tls": False}
    assert ask(f"{FORGED}, {CLIENT}, 192.0.2.1, 10.1.2.3")["address"] == CLIENT
    assert ask("garbage, 10.1.2.3")["address"] == "10.1.2.3"
    assert ask(CLIENT, "https")["tls"] is True


def test_over_tls_cookies_are_secure_and_hsts_is_sent():
    client = make_app(public_url="https://cobranza.example.mx").test_client()
    response = client.get("/login")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in response.headers["Set-Cookie"]

    proxied = make_app(trusted_proxies=PROXY).test_client()
    response = proxied.get("/login", environ_base={"REMOTE_ADDR": PROXY},
                           headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in response.headers["Set-Cookie"] and "Strict-Transport-Security" in \
        response.headers
    plain = make_app().test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in plain.headers["Set-Cookie"]
