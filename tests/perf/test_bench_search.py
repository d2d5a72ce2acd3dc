"""The free-text search of "Ver cartera" over 1,000,000 debtors, measured at the service.

The issue's benchmark: p50/p99 of the search over a million debtors, target p99 < 50 ms at
the service. A dedicated institution (id 9100, code BENCH) gets 1,000,000 debtors with
one account each, 1-2 phones (10 digits), an email for ~60 % and Mexican names built
from lists of surnames and first names (``APELLIDO APELLIDO NOMBRE``, common surnames
far more frequent than rare ones); generated inside PostgreSQL with generate_series, then
VACUUM ANALYZE. Everything is removed again at the end. RECAUDO_BENCH_SEARCH_DEBTORS runs a
smaller institution (a quick check on a shared machine; the target is about the million).

Query kinds, ~200 different values each, drawn from the generated rows so they hit:

    name common    "HERNANDEZ LOP": a surname and the start of the second (trigram)
    name rare      "ZUÑIGA": a rare surname, a whole word (trigram, ~2,000 matches)

(names match word by word, in any order, without case or accents: the trigram index is on
``portfolio.search_text(name)``; a one-word text is also tried as an e-mail prefix)
    phone prefix   the first 8 digits of a phone (btree text_pattern_ops)
    phone full     a whole 10-digit phone
    customer       a customer number (digits: also tried as phone prefix and account)
    account        an account number (12 digits)
    email prefix   "maria.lopez37@ho": an address up to 2 letters of the domain
    filter         no text: stage + days-past-due range, sorted by -balance, page 1
    landing        no text, no filter, the default sort: what "Ver cartera" opens with

each timed three ways, at 1 and 8 clients:

    service   the portfolio service's list_accounts RPC on a ClusterRpcProxy per client
              thread, with a signed supervisor identity (reads every institution): "at
              the service", what the target is about
    raw       the very SQL list_accounts sends (compiled from search.list_accounts with
              the service's dialect), on one psycopg connection per client thread, a
              transaction per call like the service's session: the database's share
    gateway   GET /api/v1/accounts?q=... with a bearer token of the demo supervisor
              (the auth service's demo users are seeded, idempotently, for this)

then EXPLAIN (ANALYZE, BUFFERS) of one query of each kind, so the reader sees which
index answers. Nothing asserts on time; the test fails only if calls fail or miss.
"""
from __future__ import annotations

import itertools
import os
import platform
import random
import threading
import time
from contextlib import contextmanager

import psycopg
import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy
from requests.adapters import HTTPAdapter
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import make_url
from urllib3.util.retry import Retry

from recaudo_common.config import settings
from recaudo_common.identity import Identity, sign

from .bench import Result, measure, print_ratios, print_table

INSTITUTION_ID = 9100
INSTITUTION_CODE = "BENCH"
DEBTORS = int(os.environ.get("RECAUDO_BENCH_SEARCH_DEBTORS", "1000000"))
#: ids of the generated debtors and accounts: BASE + 1 .. BASE + DEBTORS, far above what
#: the sequences hand out, so nothing else ever collides with them
ID_BASE = 9_100_000_000
CUSTOMER_BASE = 91_000_000          # customer numbers 91000001 ... (8 digits)
QUERIES = 200                       # values per kind, and calls per cell at most
CONCURRENCY = (1, 8)
RPC_TIMEOUT = 60.0
SEED = 9100

# -- names: by frequency, most common first (the generator favours the head of the list) --
SURNAMES = """HERNANDEZ GARCIA MARTINEZ LOPEZ GONZALEZ PEREZ RODRIGUEZ SANCHEZ RAMIREZ CRUZ
FLORES GOMEZ MORALES VAZQUEZ JIMENEZ REYES DIAZ TORRES GUTIERREZ RUIZ MENDOZA AGUILAR ORTIZ
MORENO CASTILLO ROMERO ALVAREZ MENDEZ CHAVEZ RIVERA JUAREZ RAMOS DOMINGUEZ HERRERA MEDINA
CASTRO VARGAS GUZMAN VELAZQUEZ MUÑOZ ROJAS CONTRERAS SALAZAR LUNA ORTEGA SANTIAGO GUERRERO
ESTRADA BAUTISTA CORTES SOTO ALVARADO ESPINOZA LARA AVILA RIOS CERVANTES SILVA DELGADO VEGA
MARQUEZ SANDOVAL FERNANDEZ LEON CARRILLO MEJIA SOLIS NUÑEZ ROSAS HUERTA CAMPOS IBARRA
NAVARRO PACHECO MOLINA CABRERA ACOSTA ROSALES VALDEZ TREJO FUENTES ESPINOSA AYALA PADILLA
CAMACHO BECERRA ACEVEDO ARELLANO GALLEGOS OROZCO CARDENAS SALINAS VILLEGAS""".split()
#: about 2 % of surnames come from here, uniformly: a few hundred to ~2,000 debtors each
RARE_SURNAMES = """ZUÑIGA ZAVALA YAÑEZ VILLASEÑOR ARREOLA QUINTANILLA BARRAGAN ZEPEDA
ECHEVERRIA OCHOA ITURBIDE GALINDO BETANCOURT OLVERA ZARAGOZA URIBE PLASCENCIA ARRIAGA
CISNEROS MONTAÑO""".split()
FIRST_NAMES = """MARIA_GUADALUPE JUAN JOSE_LUIS MARIA JOSE ROSA_MARIA FRANCISCO
JUAN_CARLOS MIGUEL_ANGEL GUADALUPE VERONICA LETICIA JESUS ALEJANDRO ANTONIO PEDRO
PATRICIA ELIZABETH MARIA_DEL_CARMEN MANUEL RICARDO JORGE ROBERTO FERNANDO DANIEL CARLOS
LAURA GABRIELA ADRIANA ALEJANDRA MARTHA SILVIA ARTURO EDUARDO SERGIO JAVIER RAFAEL
CLAUDIA YOLANDA ANA_MARIA MARGARITA SANDRA MONICA ARMANDO ENRIQUE OSCAR RAUL ALBERTO
MARIO GERARDO HECTOR LUIS DIANA ISABEL NORMA ALICIA TERESA BEATRIZ LORENA XIMENA SOFIA
VALERIA FERNANDA DIEGO SANTIAGO EMILIANO REGINA CAMILA IVAN OMAR"""
FIRST_NAMES = [name.replace("_", " ") for name in FIRST_NAMES.split()]
AREA_CODES = "55 33 81 222 442 477 614 656 664 686 722 744 999 998 229 871 443 312".split()
EMAIL_DOMAINS = "gmail.com hotmail.com outlook.com yahoo.com.mx live.com.mx prodigy.net.mx".split()
PRODUCTS = ["Tarjeta de crédito", "Préstamo personal", "Crédito automotriz", "Crédito nómina",
            "Crédito PyME"]
RARE_SHARE = 0.02


def _zipf(names: list[str], shift: float, power: float, share: float = 1.0) -> list[float]:
    """Weights 1 / (rank + shift) ** power of ``names`` (most common first), summing to
    ``share``."""
    weights = [1 / (rank + shift) ** power for rank in range(len(names))]
    return [share * w / sum(weights) for w in weights]


def _lower_bounds(weights: list[float]) -> list[float]:
    """Bucket lower bounds for ``width_bucket(random(), bounds)``: 1-based index drawn with
    these weights (a binary search over a float array: cheap for a million rows)."""
    bounds, total = [], 0.0
    for weight in weights:
        bounds.append(total)
        total += weight
    return bounds


#: HERNANDEZ ~5 % of surnames, the tail of SURNAMES ~0.4 %, each rare one ~0.1 %
SURNAME_POOL = SURNAMES + RARE_SURNAMES
SURNAME_BOUNDS = _lower_bounds(
    _zipf(SURNAMES, 6, 0.9, 1 - RARE_SHARE)
    + [RARE_SHARE / len(RARE_SURNAMES)] * len(RARE_SURNAMES))
FIRST_NAME_BOUNDS = _lower_bounds(_zipf(FIRST_NAMES, 5, 0.8))
AREA_CODE_BOUNDS = _lower_bounds(_zipf(AREA_CODES, 1, 1.2))     # 55 (CDMX) the most frequent


# -- the data ---------------------------------------------------------------------------------

_GENERATE = [
    # the names first, in a temporary table every other table draws from
    ("names", """
CREATE TEMP TABLE bench_names ON COMMIT DROP AS
SELECT g,
       (%(surnames)s::text[])[width_bucket(random(), %(surname_bounds)s::float8[])] AS s1,
       (%(surnames)s::text[])[width_bucket(random(), %(surname_bounds)s::float8[])] AS s2,
       (%(first)s::text[])[width_bucket(random(), %(first_bounds)s::float8[])] AS f,
       random() AS r
FROM generate_series(1, %(debtors)s) AS g"""),
    ("debtors", """
INSERT INTO portfolio.debtors (id, institution_id, customer_number, kind, name, tax_id,
                               birth_date, time_zone)
SELECT %(base)s + g, %(institution)s, (%(customer_base)s + g)::text, 'person',
       s1 || ' ' || s2 || ' ' || f,
       left(s1, 2) || left(s2, 1) || left(f, 1) || to_char(b, 'YYMMDD')
           || upper(substr(md5(g::text), 1, 3)),
       b, 'America/Mexico_City'
FROM (SELECT *, date '1950-01-01' + floor(r * 18000)::int AS b FROM bench_names) AS n"""),
    ("accounts", """
INSERT INTO portfolio.accounts (id, institution_id, debtor_id, account_number, product,
                                original_amount, balance, overdue_amount, days_past_due,
                                stage, status_id, assigned_agent_id, opened_on)
SELECT %(base)s + g, %(institution)s, %(base)s + g,
       (4000 + floor(random() * 1000))::int::text || lpad(g::text, 8, '0'),
       (%(products)s::text[])[1 + floor(random() * 5)::int],
       round(balance * 1.4, 2), balance, round(balance * least(dpd, 360) / 360.0, 2), dpd,
       stage, (%(statuses)s::int[])[CASE stage WHEN 'current' THEN 1
                                            WHEN 'delinquent' THEN 2 ELSE 3 END],
       CASE WHEN stage = 'delinquent' THEN 100 + floor(random() * 40)::int END,
       date '2026-01-01' - floor(random() * 2000)::int
FROM (SELECT g, round((2000 + power(random(), 2) * 250000)::numeric, 2) AS balance,
             CASE WHEN r < 0.40 THEN 0
                  WHEN r < 0.94 THEN 1 + floor(power(random(), 1.7) * 720)::int
                  ELSE 180 + floor(random() * 900)::int END AS dpd,
             CASE WHEN r < 0.40 THEN 'current' WHEN r < 0.94 THEN 'delinquent'
                  ELSE 'litigation' END AS stage
      FROM (SELECT g, random() AS r FROM generate_series(1, %(debtors)s) AS g) AS x) AS a"""),
    ("phones", """
INSERT INTO portfolio.phones (debtor_id, number, kind, priority)
SELECT %(base)s + g, area || lpad(floor(random() * power(10, 10 - length(area)))::bigint::text,
                                  10 - length(area), '0'), kind, priority
FROM (SELECT g, 1 AS priority, 'mobile' AS kind,
             (%(areas)s::text[])[width_bucket(random(), %(area_bounds)s::float8[])] AS area
      FROM generate_series(1, %(debtors)s) AS g
      UNION ALL
      SELECT g, 2, CASE WHEN random() < 0.5 THEN 'home' ELSE 'work' END,
             (%(areas)s::text[])[width_bucket(random(), %(area_bounds)s::float8[])]
      FROM generate_series(1, %(debtors)s) AS g WHERE random() < 0.5) AS p
ON CONFLICT DO NOTHING"""),
    ("emails", """
INSERT INTO portfolio.emails (debtor_id, address)
SELECT %(base)s + g,
       translate(lower(split_part(f, ' ', 1) || '.' || replace(s1, ' ', '')), 'ñ', 'n')
       || CASE WHEN r < 0.8 THEN (g %% 1000)::text ELSE '' END
       || '@' || (%(domains)s::text[])[1 + floor(random() * %(n_domains)s)::int]
FROM bench_names WHERE random() < 0.6
ON CONFLICT DO NOTHING"""),
]


#: two lanes on two connections; with the foreign-key triggers off (superuser) they run in
#: parallel, else one after the other in one transaction
_LANES = (("names", "debtors", "emails"), ("accounts", "phones"))


def _dsn() -> str:
    """RECAUDO_DATABASE_URL without SQLAlchemy's ``+psycopg`` driver suffix."""
    url = make_url(settings().database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _is_superuser(conn) -> bool:
    return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]


def remove(conn) -> None:
    """Delete the benchmark institution and everything under it (also an aborted run's)."""
    ids = {"low": ID_BASE, "high": ID_BASE + DEBTORS + 1, "institution": INSTITUTION_ID}
    by_account = "account_id > %(low)s AND account_id < %(high)s"
    by_debtor = "debtor_id > %(low)s AND debtor_id < %(high)s"
    with conn.transaction():
        if _is_superuser(conn):
            # every child row goes explicitly below: skip a million cascade and RI triggers
            conn.execute("SET LOCAL session_replication_role = replica")
        for table, where in (("instalments", by_account), ("movements", by_account),
                             ("aging_snapshots", by_account), ("accounts", by_debtor),
                             ("phones", by_debtor), ("emails", by_debtor),
                             ("addresses", by_debtor), ("guarantors", by_debtor)):
            conn.execute(f"DELETE FROM portfolio.{table} WHERE {where}", ids)
        conn.execute("DELETE FROM portfolio.debtors WHERE institution_id = %(institution)s", ids)
        conn.execute("DELETE FROM portfolio.statuses WHERE institution_id = %(institution)s", ids)
        conn.execute("DELETE FROM portfolio.institutions WHERE id = %(institution)s", ids)


def generate(dsn: str, debtors: int = DEBTORS) -> dict[str, float]:
    """Fill the benchmark institution (removing an aborted run's first); answer seconds
    per step."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        remove(conn)
        parallel = _is_superuser(conn)
        with conn.transaction():
            conn.execute("INSERT INTO portfolio.institutions (id, code, name) VALUES "
                         "(%s, %s, 'Benchmark de búsqueda')", (INSTITUTION_ID, INSTITUTION_CODE))
            statuses = [conn.execute(
                "INSERT INTO portfolio.statuses (institution_id, code, name, sort_order) "
                "VALUES (%s, %s, %s, %s) RETURNING id", (INSTITUTION_ID, code, name, n)
            ).fetchone()[0] for n, (code, name) in enumerate((
                ("NUEVA", "Nueva asignación"), ("EN_GESTION", "En gestión"),
                ("DEMANDA", "Demanda presentada")))]
    params = {"base": ID_BASE, "institution": INSTITUTION_ID, "debtors": debtors,
              "customer_base": CUSTOMER_BASE, "surnames": SURNAME_POOL,
              "surname_bounds": SURNAME_BOUNDS, "first": FIRST_NAMES,
              "first_bounds": FIRST_NAME_BOUNDS, "areas": AREA_CODES,
              "area_bounds": AREA_CODE_BOUNDS,
              "domains": EMAIL_DOMAINS, "n_domains": len(EMAIL_DOMAINS),
              "products": PRODUCTS, "statuses": statuses}
    sql = dict(_GENERATE)
    timings: dict[str, float] = {}
    failures: list[BaseException] = []

    def lane(steps, seed: float) -> None:
        try:
            with psycopg.connect(dsn) as conn, conn.transaction():
                conn.execute("SET LOCAL work_mem = '256MB'")
                if parallel:
                    # consistent by construction: no per-row foreign-key checks (3.5 million)
                    conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute("SELECT setseed(%s)", (seed,))
                for step in steps:
                    began = time.perf_counter()
                    conn.execute(sql[step], params)
                    timings[step] = time.perf_counter() - began
        except BaseException as exc:  # re-raised in the caller's thread
            failures.append(exc)

    began = time.perf_counter()
    if parallel:
        threads = [threading.Thread(target=lane, args=(steps, 0.1 + n / 10))
                   for n, steps in enumerate(_LANES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        lane(("names", "debtors", "accounts", "phones", "emails"), 0.1)
    if failures:
        raise failures[0]
    timings["load (wall)"] = time.perf_counter() - began
    began = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        # flush the trigram index's pending list, set hint bits and the visibility map and
        # give the planner statistics: the state autovacuum reaches on its own
        conn.execute("SELECT gin_clean_pending_list('portfolio.ix_debtors_name_search'::regclass)")
        conn.execute("VACUUM (ANALYZE) portfolio.debtors, portfolio.accounts, portfolio.phones, "
                     "portfolio.emails")
    timings["vacuum analyze"] = time.perf_counter() - began
    return timings


@pytest.fixture(scope="module")
def million_debtors():
    """The benchmark institution with its million debtors, removed after the module."""
    dsn = _dsn()
    began = time.perf_counter()
    try:
        timings = generate(dsn)
        print(f"\n{DEBTORS:,} debtors generated in {time.perf_counter() - began:.1f} s ("
              + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items()) + ")")
        yield dsn
    finally:
        began = time.perf_counter()
        for attempt in range(10):   # the server may be out of connections for a moment
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    remove(conn)
                    # a million dead rows would slow the next suite until autovacuum comes
                    conn.execute("VACUUM (ANALYZE) portfolio.debtors, portfolio.accounts, "
                                 "portfolio.phones, portfolio.emails")
                break
            except psycopg.OperationalError:
                if attempt == 9:
                    raise
                time.sleep(3)
        print(f"benchmark institution removed in {time.perf_counter() - began:.1f} s")


# -- the queries ----------------------------------------------------------------------------

KINDS = ("name common", "name rare", "phone prefix", "phone full", "customer", "account",
         "email prefix", "filter", "landing")
EXAMPLES = {"name common": '"HERNANDEZ LOP"', "name rare": '"ZUÑIGA"',
            "phone prefix": "8 digits", "phone full": "10 digits", "customer": "8 digits",
            "account": "12 digits", "email prefix": '"maria.lopez37@ho"',
            "filter": "no text: stage + dpd range, sorted by -balance, page 1",
            "landing": "no text, no filter, default sort (-days_past_due), page 1"}


def draw_queries(conn, count: int = QUERIES) -> dict[str, list[dict]]:
    """``count`` list_accounts queries of each kind, drawn from the generated rows (a fixed
    sample of debtors), so each one matches at least that debtor."""
    rnd = random.Random(SEED)
    sample = [ID_BASE + n for n in rnd.sample(range(1, DEBTORS + 1), count * 4)]
    debtors = conn.execute(
        "SELECT d.id, d.name, d.customer_number, a.account_number FROM portfolio.debtors d "
        "JOIN portfolio.accounts a ON a.debtor_id = d.id WHERE d.id = ANY(%s)",
        (sample,)).fetchall()
    by_id = {row[0]: row for row in debtors}
    rows = [by_id[i] for i in sample if i in by_id][:count]
    phones = dict(conn.execute(
        "SELECT DISTINCT ON (debtor_id) debtor_id, number FROM portfolio.phones "
        "WHERE debtor_id = ANY(%s) ORDER BY debtor_id, random()", (sample,)).fetchall())
    emails = conn.execute("SELECT address FROM portfolio.emails WHERE debtor_id = ANY(%s) "
                          "ORDER BY debtor_id", (sample,)).fetchall()

    def name_common(name: str) -> str:      # "HERNANDEZ LOPEZ MARIA" -> "HERNANDEZ LOP"
        first, second = name.split()[:2]
        return f"{first} {second[:3]}"

    def email_prefix(address: str) -> str:  # "maria.lopez37@hotmail.com" -> "...@ho"
        local, domain = address.split("@")
        return f"{local}@{domain[:2]}"

    def stage_range() -> dict:
        if rnd.random() < 0.75:
            low = rnd.randrange(1, 600)
            return {"stage": "delinquent", "dpd_min": low,
                    "dpd_max": low + rnd.choice((29, 59, 89, 179))}
        low = rnd.randrange(180, 900)
        return {"stage": "litigation", "dpd_min": low, "dpd_max": low + rnd.choice((89, 179))}

    rare = [RARE_SURNAMES[n % len(RARE_SURNAMES)] for n in range(count)]
    rnd.shuffle(rare)
    texts = {
        "name common": [name_common(row[1]) for row in rows],
        "name rare": rare,
        "phone prefix": [number[:8] for number in itertools.islice(phones.values(), count)],
        "phone full": list(itertools.islice(phones.values(), count)),
        "customer": [row[2] for row in rows],
        "account": [row[3] for row in rows],
        "email prefix": [email_prefix(address) for (address,) in emails[:count]],
    }
    queries = {kind: [{"q": text} for text in values] for kind, values in texts.items()}
    queries["filter"] = [{**stage_range(), "sort": "-balance", "page": 1} for _ in range(count)]
    queries["landing"] = [{} for _ in range(count)]   # what "Ver cartera" opens with
    return queries


def bench_identity() -> Identity:
    """A supervisor reading every institution, as the gateway would sign it."""
    return Identity(user_id=2, username="bench", profile="Supervisor",
                    permissions=frozenset({"portfolio.read", "portfolio.read_all"}),
                    institutions=None)


class _Capture:
    """Stands in for the session: records the statements list_accounts executes."""

    def __init__(self):
        self.statements = []

    def execute(self, statement, params=None):
        self.statements.append(statement)
        return self

    def scalar_one(self):
        return 0

    def all(self):
        return []


_DIALECT = PGDialect_psycopg()


def statements_of(query: dict) -> list[tuple[str, dict]]:
    """The SQL (and parameters) list_accounts sends for ``query`` (the page and its capped
    count), compiled for psycopg exactly as the service's engine compiles them."""
    from portfolio import search
    from portfolio.contracts import AccountQuery
    from recaudo_common.validation import load

    capture = _Capture()
    search.list_accounts(capture, bench_identity(), load(AccountQuery(), dict(query)))
    out = []
    for statement in capture.statements:
        compiled = statement.compile(dialect=_DIALECT,
                                     compile_kwargs={"render_postcompile": True})
        out.append((str(compiled), dict(compiled.params)))
    return out


def _cycling(values: list, counter) -> "itertools.cycle":
    """The values from a different starting point for each client thread."""
    start = next(counter) * 37 % len(values)
    return itertools.cycle(values[start:] + values[:start])


def service_client(queries: list[dict], token: str):
    counter = itertools.count()

    @contextmanager
    def client():
        values = _cycling(queries, counter)
        with ClusterRpcProxy(settings().nameko, context_data={"identity": token},
                             timeout=RPC_TIMEOUT) as proxy:
            def call():
                page = proxy.portfolio.list_accounts(next(values))
                if not page["items"]:
                    raise LookupError("no match")
            yield call
    return client


def raw_client(dsn: str, statements: list[list[tuple[str, dict]]]):
    counter = itertools.count()

    @contextmanager
    def client():
        values = _cycling(statements, counter)
        with psycopg.connect(dsn, autocommit=True) as conn:
            def call():
                with conn.transaction():   # like the service's session (SET LOCAL needs one)
                    for sql, params in next(values):
                        cursor = conn.execute(sql, params)
                        rows = cursor.fetchall() if cursor.description else None
                if not rows:
                    raise LookupError("no match")
            yield call
    return client


def gateway_client(base_url: str, queries: list[dict], password: str):
    counter = itertools.count()

    @contextmanager
    def client():
        values = _cycling(queries, counter)
        with requests.Session() as http:
            # gunicorn drops a keep-alive connection idle for 2 s (this one may wait that
            # long at the start barrier while the others log in): a GET is retried on a new
            # connection, as any browser does
            http.mount(base_url, HTTPAdapter(max_retries=Retry(
                total=1, connect=1, read=1, status=0, allowed_methods={"GET"})))
            # a fresh access token per client thread (they last 15 minutes)
            answer = http.post(f"{base_url}/api/v1/auth/token", timeout=RPC_TIMEOUT,
                               json={"username": "supervisor", "password": password})
            answer.raise_for_status()
            http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

            def call():
                response = http.get(f"{base_url}/api/v1/accounts", params=next(values),
                                    timeout=RPC_TIMEOUT)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                if not response.json()["items"]:
                    raise LookupError("no match")
            yield call
    return client


def seed_demo_users() -> str:
    """The auth service's default profiles and demo users (idempotent, like e2e's
    ``demo_users``): the gateway row logs in as the demo supervisor. Answers the password."""
    from auth import seed as auth_seed
    from recaudo_common.demo import DEMO_PASSWORD

    auth_seed.seed_defaults()
    auth_seed.seed_demo()
    return DEMO_PASSWORD


# -- plans ----------------------------------------------------------------------------------

def _plan_lines(node: dict, depth: int = 0) -> list[str]:
    name = node["Node Type"]
    if node.get("Subplan Name"):
        name = f"[{node['Subplan Name']}] {name}"
    if node.get("Relation Name"):
        name += f" on {node['Relation Name']}"
    if node.get("Index Name"):
        name += f" using {node['Index Name']}"
    loops = node.get("Actual Loops", 1)
    details = [f"rows={node.get('Actual Rows', 0)}" + (f" x{loops}" if loops > 1 else ""),
               f"{node.get('Actual Total Time', 0) * max(loops, 1):.2f} ms"]
    if node.get("Rows Removed by Filter"):
        details.append(f"filtered={node['Rows Removed by Filter']}")
    if node.get("Rows Removed by Index Recheck"):
        details.append(f"rechecked-out={node['Rows Removed by Index Recheck']}")
    if node.get("Heap Fetches"):
        details.append(f"heap fetches={node['Heap Fetches']}")
    hit, read = node.get("Shared Hit Blocks", 0), node.get("Shared Read Blocks", 0)
    details.append(f"buffers hit={hit}" + (f" read={read}" if read else ""))
    lines = [f"{'  ' * depth}{name}  ({', '.join(details)})"]
    for child in node.get("Plans", ()):
        lines += _plan_lines(child, depth + 1)
    return lines


def explain(conn, sql: str, params: dict) -> tuple[float, float, list[str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement: planning ms, execution ms, the tree."""
    plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql,
                        params).fetchone()[0][0]
    return plan["Planning Time"], plan["Execution Time"], _plan_lines(plan["Plan"])


# -- the benchmark --------------------------------------------------------------------------

TARGET_P99_MS = 50.0


def _environment(conn) -> str:
    version = conn.execute("SHOW server_version").fetchone()[0]
    buffers = conn.execute("SHOW shared_buffers").fetchone()[0]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"machine: {os.cpu_count()} CPUs (load average {load}), Python "
            f"{platform.python_version()}, PostgreSQL {version} (shared_buffers {buffers}); "
            f"the clients share the CPUs with the stack and PostgreSQL")


def _measured(label: str, client, concurrency: int, calls: int, seconds: float,
              note: str) -> Result:
    """``bench.measure``, or a row with the reason when a client could not even start (the
    shared PostgreSQL out of connections, say): the other rows still get measured."""
    try:
        return measure(label, client, concurrency=concurrency, requests=calls,
                       seconds=seconds, note=note)
    except RuntimeError as exc:
        cause = exc.__cause__ or exc
        return Result(label, concurrency, errors=1, note=note,
                      first_error=f"client failed to start: {type(cause).__name__}: {cause}")


def _matches(pages: list[dict]) -> str:
    totals = sorted(page["total"] for page in pages)
    middle = totals[len(totals) // 2]
    exact = all(page.get("total_is_exact", True) for page in pages)
    return f"{middle:,}" if exact else f">={middle:,}"


def test_search_over_a_million_debtors(stack_url, bench_limits, million_debtors):
    dsn, cfg = million_debtors, settings()
    with psycopg.connect(dsn, autocommit=True) as conn:
        queries = draw_queries(conn)
        environment = _environment(conn)
    statements = {kind: [statements_of(query) for query in values]
                  for kind, values in queries.items()}
    token = sign(bench_identity(), ttl=4 * 3600)

    # correctness first (untimed): every kind answers through the service and matches
    matches = {}
    with ClusterRpcProxy(cfg.nameko, context_data={"identity": token},
                         timeout=RPC_TIMEOUT) as proxy:
        for kind in KINDS:
            pages = [proxy.portfolio.list_accounts(query) for query in queries[kind][:9]]
            assert all(page["items"] for page in pages), (kind, queries[kind][:9])
            matches[kind] = _matches(pages)
        exact = proxy.portfolio.list_accounts(queries["customer"][0])
        assert exact["total"] == 1 and exact["items"][0]["customer_number"] == \
            queries["customer"][0]["q"], exact
        # the page's count and order against the database's own answer
        rare = queries["name rare"][0]["q"]
        page = proxy.portfolio.list_accounts({"q": rare, "per_page": 200})
        with psycopg.connect(dsn, autocommit=True) as conn:
            expected = conn.execute(
                "SELECT a.id FROM portfolio.accounts a JOIN portfolio.debtors d "
                "ON d.id = a.debtor_id WHERE portfolio.search_text(d.name) "
                "LIKE portfolio.search_text(%s) OR EXISTS (SELECT 1 FROM portfolio.emails e "
                "WHERE e.debtor_id = d.id AND e.address LIKE %s) "   # one word: an e-mail's start
                "ORDER BY a.days_past_due DESC, a.id",
                (f"%{rare}%", f"{rare.lower()}%")).fetchall()
        assert page["total"] == len(expected) and page["total_is_exact"], page["total"]
        assert [item["account_id"] for item in page["items"]] == [i for i, in expected[:200]]

    try:
        password = seed_demo_users()
        gateway_note = ("GET /api/v1/accounts with a bearer token of the demo supervisor "
                        "(gunicorn gthread -> pooled proxy -> the same RPC)")
    except Exception as exc:  # the rows are left out, and the table says why
        password, gateway_note = None, f"left out: no token ({type(exc).__name__}: {exc})"

    calls = min(QUERIES, bench_limits["requests"])
    results = []
    for kind in KINDS:
        paths = [("service", service_client(queries[kind], token),
                  "portfolio.list_accounts over a ClusterRpcProxy per client thread"),
                 ("raw", raw_client(dsn, statements[kind]),
                  "the same SQL on one psycopg connection per thread, a transaction per call")]
        if password:
            paths.append(("gateway", gateway_client(stack_url, queries[kind], password),
                          gateway_note))
        rows = [_measured(f"{kind}: {path}", client, level, calls, bench_limits["seconds"], note)
                for path, client, note in paths for level in CONCURRENCY]
        print_table(rows, title=f"{kind} ({EXAMPLES[kind]}; matches per query, median: "
                                f"{matches[kind]}; e.g. {queries[kind][0]})")
        results += rows
    if not password:
        print(f"\ngateway rows: {gateway_note}")

    pairs = [(f"{kind}: service", f"{kind}: raw") for kind in KINDS]
    if password:
        pairs += [(f"{kind}: gateway", f"{kind}: service") for kind in KINDS]
    print_ratios(results, pairs, title="ratios (p50 x: times slower per call; req/s x: share "
                                       "of the other's throughput)")

    by_key = {(r.label, r.concurrency): r for r in results}
    width = max(len(kind) for kind in KINDS)
    lines = ["", f"p99 at the service against the target ({TARGET_P99_MS:g} ms), "
                 f"{calls} queries per cell\n{environment}",
             f"{'kind':<{width}}  {'matches':>9}  " + "  ".join(
                 f"{'p50/p99 ' + path + ' x' + str(level):>24}"
                 for path in ("service", "raw") for level in CONCURRENCY) + "  target x1"]
    for kind in KINDS:
        cells = []
        for path in ("service", "raw"):
            for level in CONCURRENCY:
                r = by_key[(f"{kind}: {path}", level)]
                cells.append(f"{r.p50:>11.1f} / {r.p99:>10.1f}")
        p99 = by_key[(f"{kind}: service", 1)].p99
        lines.append(f"{kind:<{width}}  {matches[kind]:>9}  " + "  ".join(cells)
                     + f"  {'met' if p99 < TARGET_P99_MS else 'MISSED':>9}")
    print("\n".join(lines))

    print("\nEXPLAIN (ANALYZE, BUFFERS) of the first query of each kind, as list_accounts "
          "sends it (buffers: hit in shared_buffers, read from the OS)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for kind in KINDS:
            print(f"\n== {kind}: {queries[kind][0]}")
            for n, (sql, params) in enumerate(statements[kind][0], 1):
                if sql.startswith("SET "):      # planner settings: EXPLAIN plans with values
                    print(f"-- statement {n}: {sql}")
                    continue
                planning, execution, tree = explain(conn, sql, params)
                print(f"-- statement {n}: planning {planning:.2f} ms, execution "
                      f"{execution:.2f} ms")
                print("\n".join("   " + line for line in tree))

    failed = [f"{r.label} x{r.concurrency}: {r.errors} errors ({r.first_error})"
              for r in results if r.errors]
    assert not failed, failed
    assert all(r.count for r in results)
