"""The price of one trivial call, measured along the path it takes.

    gateway   HTTP GET /api/v1/system/ping/auth -> gunicorn gthread -> pooled
              ClusterRpcProxy -> RabbitMQ -> auth.health -> PostgreSQL
              (falls back to /api/v1/system/health, six RPCs, if ping is missing)
    bearer    the same request with an API bearer token, as for every authenticated
              request: the floor of any API endpoint. The gateway process resolves a
              token it knows from its identity cache (no RPC); the first use asks auth
    health    HTTP GET /api/v1/system/health: six health RPCs in parallel, one proxy
    proxy     a standalone ClusterRpcProxy per client thread calling auth.health()
    raw       psycopg 3 ``SELECT 1`` on one autocommit connection per client thread
    raw x4    psycopg 3 with the round trips ``db.health()`` makes through SQLAlchemy:
              pre-ping ";", BEGIN, SELECT 1, ROLLBACK

each at 1 and 16 concurrent clients. The table and the ratios are printed (run with
``-s``); the test only fails if calls fail, never on how long they took.
"""
from __future__ import annotations

import os
import platform
from contextlib import contextmanager

import psycopg
import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy.engine import make_url

from recaudo_common.config import SERVICES, settings

from .bench import measure, print_ratios, print_table

CONCURRENCY = (1, 16)
SERVICE = "auth"
RPC_TIMEOUT = 10.0

GATEWAY_PING = f"gateway ping/{SERVICE} (1 RPC)"
GATEWAY_BEARER = f"gateway ping/{SERVICE}, bearer token"
BEARER_USER = "bench-rpc"
BEARER_PASSWORD = "bench-rpc-clave-larga-2026"
GATEWAY_HEALTH = f"gateway system/health ({len(SERVICES)} RPC)"
PROXY = f"proxy {SERVICE}.health()"
RAW = "raw psycopg SELECT 1"
RAW_AS_SERVICE = "raw psycopg as db.health (4 trips)"


def http_client(url: str, token: str | None = None):
    @contextmanager
    def client():
        with requests.Session() as session:
            if token:
                session.headers["Authorization"] = f"Bearer {token}"
            def call():
                response = session.get(url, timeout=RPC_TIMEOUT)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            yield call
    return client


@contextmanager
def proxy_client():
    # nameko's standalone proxy is not thread safe: bench.measure enters one per thread
    with ClusterRpcProxy(settings().nameko, timeout=RPC_TIMEOUT) as proxy:
        yield getattr(proxy, SERVICE).health


def _dsn() -> str:
    """RECAUDO_DATABASE_URL without SQLAlchemy's ``+psycopg`` driver suffix."""
    url = make_url(settings().database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@contextmanager
def raw_client():
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        def call():
            conn.execute("SELECT 1").fetchone()
        yield call


@contextmanager
def raw_as_service_client():
    """What ``ServiceDatabase.health`` costs in PostgreSQL round trips (pool_pre_ping,
    then an implicit transaction around the SELECT, rolled back on return to the pool)."""
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        def call():
            conn.execute(";")
            conn.execute("BEGIN")
            conn.execute("SELECT 1").fetchone()
            conn.execute("ROLLBACK")
        yield call


def _remove_bearer_user(conn) -> None:
    where = "user_id IN (SELECT id FROM auth.users WHERE username = %s)"
    conn.execute(f"DELETE FROM auth.api_tokens WHERE {where}", [BEARER_USER])
    conn.execute("DELETE FROM auth.audit_log WHERE target_user_id IN "
                 "(SELECT id FROM auth.users WHERE username = %s)", [BEARER_USER])
    conn.execute("DELETE FROM auth.users WHERE username = %s", [BEARER_USER])
    conn.execute("DELETE FROM auth.profiles WHERE name = %s", [BEARER_USER])


@pytest.fixture
def bearer_token(stack_url):
    """An API access token of a user with no permissions (a ping needs none)."""
    from auth.credentials import hash_password

    with psycopg.connect(_dsn(), autocommit=True) as conn:
        _remove_bearer_user(conn)
        profile = conn.execute("INSERT INTO auth.profiles (name, description, permissions) "
                               "VALUES (%s, 'benchmark', '{}') RETURNING id",
                               [BEARER_USER]).fetchone()[0]
        conn.execute("INSERT INTO auth.users (username, display_name, profile_id, "
                     "password_hash, password_changed_at, institutions) "
                     "VALUES (%s, 'Bench', %s, %s, now(), '{}')",
                     [BEARER_USER, profile, hash_password(BEARER_PASSWORD)])
        try:
            answer = requests.post(f"{stack_url}/api/v1/auth/token", timeout=RPC_TIMEOUT,
                                   json={"username": BEARER_USER, "password": BEARER_PASSWORD})
            answer.raise_for_status()
            yield answer.json()["access_token"]
        finally:
            _remove_bearer_user(conn)


def _environment(cfg) -> str:
    return (f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
            f"the clients share the CPUs with the stack (gateway, 6 services, "
            f"PostgreSQL, RabbitMQ), so ratios say more than absolute numbers")


def test_trivial_rpc_three_ways(stack_url, bench_limits, bearer_token):
    cfg = settings()
    ping_url = f"{stack_url}/api/v1/system/ping/{SERVICE}"
    health_url = f"{stack_url}/api/v1/system/health"

    # correctness first (once, untimed): each path answers what we think it answers
    ping = requests.get(ping_url, timeout=RPC_TIMEOUT)
    health = requests.get(health_url, timeout=RPC_TIMEOUT)
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok"
    with ClusterRpcProxy(cfg.nameko, timeout=RPC_TIMEOUT) as proxy:
        assert getattr(proxy, SERVICE).health()["database"] == "ok"

    paths = []
    if ping.status_code == 200:
        assert ping.json()["service"] == SERVICE, ping.text
        gateway = GATEWAY_PING
        paths.append((GATEWAY_PING, http_client(ping_url),
                      f"GET /api/v1/system/ping/{SERVICE}: one health RPC"))
        paths.append((GATEWAY_BEARER, http_client(ping_url, bearer_token),
                      "the same with an API bearer token, as every authenticated request "
                      "(the floor of any API endpoint): resolved from the gateway's "
                      "identity cache, auth.resolve_token only on first use"))
    else:
        assert ping.status_code == 404, ping.text
        gateway = GATEWAY_HEALTH
    paths += [
        (GATEWAY_HEALTH, http_client(health_url),
         f"GET /api/v1/system/health: {len(SERVICES)} health RPCs in parallel on one "
         f"proxy from the gateway's health pool (2 per worker, {cfg.health_timeout:g} s "
         f"timeout)" + ("" if gateway == GATEWAY_PING else
                       "; /ping/<service> answered 404, so this row stands in for the "
                       "gateway in the ratios")),
        (PROXY, proxy_client, "nameko ClusterRpcProxy, one per client thread, "
                              "no HTTP; the service does 4 PostgreSQL round trips"),
        (RAW, raw_client, "psycopg 3, autocommit, one connection per client thread"),
        (RAW_AS_SERVICE, raw_as_service_client,
         "';' (pool_pre_ping), BEGIN, SELECT 1, ROLLBACK: what db.health() sends"),
    ]

    results = []
    for label, client, note in paths:
        for concurrency in CONCURRENCY:
            results.append(measure(label, client, concurrency=concurrency, note=note,
                                   **bench_limits))

    print_table(results, title=f"trivial call, at most {bench_limits['requests']} calls / "
                               f"{bench_limits['seconds']:g} s per cell\n{_environment(cfg)}")
    pairs = [(gateway, RAW), (PROXY, RAW), (gateway, PROXY), (PROXY, RAW_AS_SERVICE)]
    if gateway == GATEWAY_PING:
        pairs.append((GATEWAY_BEARER, GATEWAY_PING))
    print_ratios(results, pairs,
                 title="ratios (p50 x: times slower per call; req/s x: share of the "
                       "other's throughput)")

    failed = [f"{r.label} x{r.concurrency}: {r.errors} errors ({r.first_error})"
              for r in results if r.errors]
    assert not failed, failed
    assert all(r.count for r in results)
