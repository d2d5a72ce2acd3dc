"""A call centre at N agents, open loop, through the web UI (``make bench ARGS="-k callcentre"``).

Every agent repeats, once per ``CYCLE`` seconds from a start drawn at random within the
first cycle, what a collector does in the browser:

    pull     POST /filas/siguiente                    the next account, leased (not followed)
    view     GET  /deudores/<id>?cuenta=..&fila=..     the 360 view the pull redirects to
    tab      GET  the view's "Gestiones" tab as htmx   the history and the activity form
    -- the call: TALK seconds --
    log      POST /deudores/<id>/gestiones            60 % no contact, 25 % contact,
                                                      10 % promise, 5 % callback
    view     GET  the view the logging redirects to
    search   GET  /cartera?q=<surname> as htmx         one cycle in five
    home     GET  /                                   one cycle in ten (the agent's dashboard)

Cycles arrive at N / CYCLE per second whatever the answers take (open loop): a cycle whose
start comes while the agent's previous one still runs starts at once and is counted late.
Each request is timed from sending to its answer.

The world: institution 9003 (any hour, no jurisdiction's calling hours) with its accounts
imported through the portfolio import (the synthetic file of ``portfolio_file``), result codes
made through the activities service, teams of up to 500 agents (``auth.save_team``, so the
queues and activities projections hear of them) and one round-robin queue per team over a
share of the regions, applied through ``queues.apply_strategy``. The agents' users and their
web sessions are written in SQL (4,000 logins would spend minutes in Argon2). Agents are
reused from level to level (the first 250 work every level); each has enough accounts for
every cycle it works.

Reported per level: requests/s, p50/p95/p99 per kind and errors; CPU ms per cycle of each
process (gateway master and workers, each service, RabbitMQ's node, the PostgreSQL backends
of this database, and this generator apart: it runs on the same machine); and the largest
N whose every kind kept p99 < 250 ms. RabbitMQ's node serves other vhosts too: on a shared
machine its figure includes their work.

    RECAUDO_BENCH_AGENTS   levels, comma separated (default 250,500,1000,2000,4000)
    RECAUDO_BENCH_CYCLES   cycles per level (default 2)
    RECAUDO_BENCH_CYCLE    seconds per cycle (default 60)

Nothing here asserts on time. Everything created is removed at the end.
"""
from __future__ import annotations

import math
import os
import random
import re
import resource
import secrets
import subprocess
import threading
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy.engine import make_url

from recaudo_common.config import settings
from recaudo_common.identity import Identity, sign
from tests import stack

from .bench import Result
from .portfolio_file import LAST, ROOT, STATES, layout, portfolio_file, run_import, \
    wait_for_consumers

INSTITUTION = 9003
LEVELS = [int(n) for n in os.environ.get("RECAUDO_BENCH_AGENTS",
                                         "250,500,1000,2000,4000").split(",")]
CYCLES = int(os.environ.get("RECAUDO_BENCH_CYCLES", "2"))
CYCLE = float(os.environ.get("RECAUDO_BENCH_CYCLE", "60"))
TALK = (CYCLE / 6, CYCLE / 2)           # seconds between opening the view and logging
TEAM_SIZE = 500                         # the most members a team may have
TARGET_P99_MS = 250.0
KINDS = ("pull", "view", "tab", "log", "search", "home")
OUTCOMES = (("NC", 0.60), ("CT", 0.25), ("PP", 0.10), ("CB", 0.05))
CODES = {"NC": {"label": "No contesta"},
         "CT": {"label": "Contacto sin compromiso", "contact_made": True},
         "PP": {"label": "Promesa de pago", "contact_made": True, "needs_promise": True},
         "CB": {"label": "Volver a llamar", "contact_made": True, "schedules_callback": True}}
SERVICES = ("auth", "portfolio", "queues", "activities", "documents", "messaging", "reports")
ADMIN = Identity(user_id=1, username="bench", profile="Administrador", institutions=None,
                 permissions=frozenset({"portfolio.import", "institutions.manage", "users.manage",
                                        "queues.manage", "activities.manage"}))


# --- the world ------------------------------------------------------------------------------

def _dsn() -> str:
    return make_url(settings().database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def _teams(agents: int) -> int:
    return max(1, math.ceil(agents / TEAM_SIZE))


def _regions(team: int, teams: int) -> list[str]:
    """The regions (STATES) team ``team`` works: dealt round robin, so the first teams,
    whose agents work the most levels, get the extra ones."""
    return [s for i, s in enumerate(STATES) if i % teams == team]


def _accounts_needed() -> int:
    """Enough accounts that every agent finds a fresh one at every pull of every level
    (x1.4 for the uneven deal of the generator's regions), in whole thousands."""
    top, teams = max(LEVELS), _teams(max(LEVELS))
    size = min(TEAM_SIZE, top)
    worst = 0
    for team in range(teams):
        first_agent = team * size + 1
        pulls = CYCLES * sum(1 for n in LEVELS if n >= first_agent)
        share = len(_regions(team, teams)) / len(STATES)
        worst = max(worst, math.ceil(pulls * size / share))
    return max(1000, math.ceil(worst * 1.4 / 1000) * 1000)


def _cleanup(db) -> None:
    """Everything of the benchmark's institution, agents and teams, the log's append-only
    trigger bypassed for the activities' part only (as the activities benchmark does)."""
    i = [INSTITUTION]
    users = [u for (u,) in db.execute(
        "SELECT id FROM auth.users WHERE username LIKE 'bench-cc-%%'")]
    teams = [t for (t,) in db.execute("SELECT id FROM auth.teams WHERE name LIKE 'Bench CC %%'")]
    with db.transaction():
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute("DELETE FROM activities.promise_instalments WHERE promise_id IN "
                   "(SELECT id FROM activities.promises WHERE institution_id = ANY(%s))", [i])
        for table in ("promises", "payments", "disputes", "agenda_items", "compliance_log",
                      "chain_heads", "activities", "productivity_daily", "debtor_preferences",
                      "result_codes", "institution_settings"):
            db.execute(f"DELETE FROM activities.{table} WHERE institution_id = ANY(%s)", [i])
        db.execute("DELETE FROM activities.team_members WHERE team_id = ANY(%s)", [teams])
        db.execute("DELETE FROM activities.teams WHERE team_id = ANY(%s)", [teams])
    statements = [
        ("DELETE FROM queues.leases l USING queues.assignments a WHERE a.account_id = "
         "l.account_id AND a.institution_id = ANY(%s)", i),
        ("DELETE FROM queues.work_log w USING queues.queues q, queues.strategies s WHERE "
         "w.queue_id = q.id AND q.strategy_id = s.id AND s.institution_id = ANY(%s)", i),
        ("DELETE FROM queues.assignments WHERE institution_id = ANY(%s)", i),
        ("DELETE FROM queues.assigned_daily WHERE institution_id = ANY(%s)", i),
        ("DELETE FROM queues.recovery_daily WHERE institution_id = ANY(%s)", i),
        ("UPDATE queues.strategies SET challenger_id = NULL WHERE institution_id = ANY(%s)", i),
        ("DELETE FROM queues.strategies WHERE institution_id = ANY(%s)", i),
        ("DELETE FROM queues.account_facts WHERE institution_id = ANY(%s)", i),
        ("DELETE FROM queues.institution_rules WHERE institution_id = ANY(%s)", i),
        ("DELETE FROM queues.team_members WHERE team_id = ANY(%s)", teams),
        ("DELETE FROM portfolio.import_jobs WHERE institution_id = ANY(%s)", i),
        ("DELETE FROM portfolio.callback_holders h USING portfolio.accounts a WHERE "
         "h.account_id = a.id AND a.institution_id = ANY(%s)", i),
        ("DELETE FROM portfolio.accounts WHERE institution_id = ANY(%s)", i),
        ("DELETE FROM portfolio.debtors WHERE institution_id = ANY(%s)", i),
        ("DELETE FROM portfolio.import_layouts WHERE institution_id = ANY(%s)", i),
        ("DELETE FROM portfolio.institutions WHERE id = ANY(%s)", i),
        ("DELETE FROM auth.team_members WHERE team_id = ANY(%s)", teams),
        ("DELETE FROM auth.teams WHERE id = ANY(%s)", teams),
        ("DELETE FROM auth.sessions WHERE user_id = ANY(%s)", users),
        ("DELETE FROM auth.audit_log WHERE target_user_id = ANY(%s)", users),
        ("DELETE FROM auth.users WHERE id = ANY(%s)", users),
    ]
    for statement, args in statements:
        db.execute(statement, [args])


def _make_world(db, proxy) -> dict:
    """The institution, its accounts, codes, agents, teams and strategy; returns the agents
    (user id, session id, csrf token) in order and the code ids."""
    db.execute("INSERT INTO portfolio.institutions (id, code, name, jurisdiction, contact_from, "
               "contact_until) VALUES (%s, 'BENCHCC', 'Benchmark centro de llamadas', 'ZZ', "
               "'00:00', '23:59:59') ON CONFLICT (id) DO NOTHING", [INSTITUTION])
    db.execute("INSERT INTO queues.institution_rules (institution_id, contact_from, "
               "contact_until) VALUES (%s, '00:00', '23:59:59') ON CONFLICT DO NOTHING",
               [INSTITUTION])
    portfolio = proxy.portfolio
    layout_id = portfolio.save_layout(layout(INSTITUTION, "Benchmark centro"))["id"]
    imported = run_import(portfolio, layout_id, portfolio_file(_accounts_needed()))
    assert imported["job"]["state"] == "done", imported["job"]
    wait_for_consumers()
    codes = _result_codes(proxy.activities)

    from auth.credentials import digest, hash_password
    top = max(LEVELS)
    profile_id = db.execute("SELECT id FROM auth.profiles WHERE name = 'Gestor'").fetchone()[0]
    rows = db.execute(
        "INSERT INTO auth.users (username, display_name, profile_id, password_hash, "
        "password_changed_at, institutions) SELECT 'bench-cc-' || g, 'Gestor ' || g, %s, %s, "
        "now(), %s FROM generate_series(1, %s) g ORDER BY g RETURNING id",
        [profile_id, hash_password(secrets.token_urlsafe(16)), [INSTITUTION], top]).fetchall()
    user_ids = sorted(u for (u,) in rows)
    supervisor = db.execute(
        "INSERT INTO auth.users (username, display_name, profile_id, institutions) SELECT "
        "'bench-cc-supervisor', 'Supervisor de la prueba', id, %s FROM auth.profiles "
        "WHERE name = 'Supervisor' RETURNING id", [[INSTITUTION]]).fetchone()[0]
    agents = [(u, secrets.token_urlsafe(32), secrets.token_hex(16)) for u in user_ids]
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO auth.sessions (id_hash, user_id, csrf_token, expires_at) "
            "VALUES (%s, %s, %s, now() + interval '1 day')",
            [(digest(sid), u, csrf) for u, sid, csrf in agents])
    teams = _teams(top)
    size = min(TEAM_SIZE, top)
    queues = []
    for team in range(teams):
        members = user_ids[team * size:(team + 1) * size]
        saved = proxy.auth.save_team({"name": f"Bench CC {team + 1}", "members": members,
                                      "supervisor_id": supervisor})
        queues.append({"name": f"Región {team + 1}", "team_id": saved["id"],
                       "policy": "round_robin", "sort": [{"field": "balance"}],
                       "conditions": {"field": "state", "op": "in",
                                      "value": _regions(team, teams)}})
    time.sleep(2)     # team_changed reaches the queues projection before the strategy checks it
    strategy = proxy.queues.save_strategy({"institution_id": INSTITUTION,
                                           "name": "Bench centro", "queues": queues})
    proxy.queues.apply_strategy(strategy["id"])
    _wait_assigned(db)
    return {"agents": agents, "codes": codes}


def _result_codes(activities) -> dict:
    """A code id per outcome: the institution's own catalogue where it has one that fits
    (the default catalogue is there once the service knows the institution), else made."""
    flags = ("contact_made", "needs_promise", "schedules_callback")
    existing = activities.list_result_codes(INSTITUTION)
    codes = {}
    for code, fields in CODES.items():
        wanted = {f: bool(fields.get(f)) for f in flags}
        found = next((c["id"] for c in existing if c.get("active", True) and not
                      c.get("invalidates_phone") and all(c[f] == v for f, v in wanted.items())),
                     None)
        codes[code] = found or activities.save_result_code(
            {"institution_id": INSTITUTION, "code": f"BENCH_{code}", **fields})["id"]
    return codes


def _wait_assigned(db, seconds: float = 600) -> None:
    """Until portfolio holds every account's collector (assignments_changed handled)."""
    deadline = time.monotonic() + seconds
    while db.execute("SELECT count(*) FROM portfolio.accounts WHERE institution_id = %s AND "
                     "assigned_agent_id IS NULL", [INSTITUTION]).fetchone()[0]:
        assert time.monotonic() < deadline, "accounts still without a collector"
        time.sleep(1)


# --- one agent ------------------------------------------------------------------------------

FORM_FIELD = re.compile(r'<input type="hidden" name="(\w+)"[^>]*value="([^"]*)"')
PHONE = re.compile(r'<select name="phone".*?</select>', re.S)
OPTION = re.compile(r'<option value="([^"]+)"(?![^>]*disabled)')


class Agent:
    """One collector's browser: a cookie session, its CSRF token, timings by kind."""

    def __init__(self, base_url: str, user_id: int, session_id: str, csrf: str, codes: dict,
                 timings: dict, errors: list, lock: threading.Lock):
        self.base_url, self.user_id, self.codes = base_url, user_id, codes
        self.http = requests.Session()
        self.http.cookies.set("recaudo_session", session_id)
        self.http.headers["X-CSRF-Token"] = csrf
        self.timings, self.errors, self.lock = timings, errors, lock
        self.rnd = random.Random(user_id)

    def _request(self, kind: str, method: str, path: str, **kwargs) -> requests.Response | None:
        began = time.perf_counter()
        try:
            answer = self.http.request(method, self.base_url + path, timeout=60,
                                       allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            self._error(kind, f"{type(exc).__name__}: {exc}")
            return None
        elapsed = time.perf_counter() - began
        if answer.status_code >= 400:
            self._error(kind, f"HTTP {answer.status_code} {method} {path}: {answer.text[:160]}")
            return None
        with self.lock:
            self.timings[kind].append(elapsed)
        return answer

    def _error(self, kind: str, text: str) -> None:
        with self.lock:
            self.errors.append((kind, text[:300]))

    def cycle(self, talk_until: float) -> str:
        """One account worked; returns what happened ('worked', 'empty', 'failed')."""
        pulled = self._request("pull", "POST", "/filas/siguiente")
        if pulled is None:
            return "failed"
        if not pulled.is_redirect:          # "nothing now": the page says why
            self._error("pull", "nothing to pull: " + re.sub(r"<[^>]+>|\s+", " ", re.search(
                r"<main.*?</main>", pulled.text, re.S).group(0) if "<main" in pulled.text
                else pulled.text)[:300])
            return "empty"
        view_path = pulled.headers["Location"].replace(self.base_url, "")
        if self._request("view", "GET", view_path) is None:
            return "failed"
        separator = "&" if "?" in view_path else "?"
        tab = self._request("tab", "GET", f"{view_path}{separator}tab=gestiones",
                            headers={"HX-Request": "true", "HX-Target": "debtor-tabs"})
        if tab is None:
            return "failed"
        form = dict(FORM_FIELD.findall(tab.text))
        phones = PHONE.search(tab.text)
        numbers = OPTION.findall(phones.group(0)) if phones else []
        time.sleep(max(0.0, talk_until - time.monotonic()))
        outcome = self.rnd.choices([c for c, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
        body = {"csrf_token": form.get("csrf_token", ""), "account_id": form.get("account_id"),
                "started_at": form.get("started_at"), "idempotency_key":
                form.get("idempotency_key"), "kind": "call", "direction": "outbound",
                "phone": numbers[0] if numbers else "", "result_code_id": self.codes[outcome],
                "description": "Llamada de la prueba de carga"}
        if form.get("queue_id"):
            body["queue_id"] = form["queue_id"]
        if outcome == "PP":
            body.update(promise_amount="1500.00",
                        promise_due_date=(date.today() + timedelta(days=7)).isoformat())
        elif outcome == "CB":
            body.update(callback_at=(date.today() + timedelta(days=1)).isoformat() + "T10:00",
                        callback_note="Pide que le llamen mañana")
        debtor_path = view_path.split("?")[0]
        logged = self._request("log", "POST", f"{debtor_path}/gestiones", data=body)
        if logged is None:
            return "failed"
        if not logged.is_redirect:
            self._error("log", f"not logged (HTTP {logged.status_code}): "
                               + re.sub(r"\s+", " ", logged.text)[:200])
            return "failed"
        self._request("view", "GET", logged.headers["Location"].replace(self.base_url, ""))
        if self.rnd.random() < 0.2:
            self._request("search", "GET", f"/cartera?q={self.rnd.choice(LAST)}",
                          headers={"HX-Request": "true", "HX-Target": "results"})
        if self.rnd.random() < 0.1:
            self._request("home", "GET", "/")
        return "worked"


# --- CPU by process ----------------------------------------------------------------------------

def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(fields[11]) + int(fields[12])       # utime + stime


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            pass
    return out


def _processes(db) -> dict[str, list[int]]:
    """pids per process: each instance the runner started (by pid file: ``portfolio``,
    ``portfolio-2``, ...), RabbitMQ's node, the backends of this database."""
    run = ROOT / settings().var_dir / "run"
    found: dict[str, list[int]] = {}
    for name in ("gateway", *SERVICES):
        for pid_file in sorted(run.glob(f"{name}*.pid")):
            if re.fullmatch(rf"{name}(-\d+)?\.pid", pid_file.name):
                pid = int(pid_file.read_text().split()[0])
                found[pid_file.stem] = [pid, *_children(pid)]
    beam = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True)
    found["rabbitmq"] = [int(p) for p in beam.stdout.split()]
    found["postgresql"] = [p for (p,) in db.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()")]
    return found


def _cpu(processes: dict[str, list[int]]) -> dict[str, int]:
    return {name: sum(_ticks(p) for p in pids) for name, pids in processes.items()}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- a level ---------------------------------------------------------------------------------

def run_level(base_url: str, world: dict, agents: int, db) -> dict:
    timings: dict[str, list[float]] = defaultdict(list)
    errors: list[tuple[str, str]] = []
    outcomes: dict[str, int] = defaultdict(int)
    late = [0]
    lock = threading.Lock()
    began = time.monotonic() + 2.0
    end_of_arrivals = began + CYCLES * CYCLE

    def work(index: int) -> None:
        user_id, session_id, csrf = world["agents"][index]
        agent = Agent(base_url, user_id, session_id, csrf, world["codes"], timings, errors, lock)
        phase = agent.rnd.uniform(0, CYCLE)
        for n in range(CYCLES):
            start = began + phase + n * CYCLE
            wait = start - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                with lock:
                    late[0] += 1
            outcome = agent.cycle(time.monotonic() + agent.rnd.uniform(*TALK))
            with lock:
                outcomes[outcome] += 1

    processes = _processes(db)
    cpu_before, own_before, wall_before = _cpu(processes), _own_cpu(), time.monotonic()
    threading.stack_size(512 * 1024)
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(agents)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - wall_before
    cpu_after, own_after = _cpu(processes), _own_cpu()
    tick = os.sysconf("SC_CLK_TCK")
    cycles = max(1, sum(outcomes.values()))
    cpu = {name: (cpu_after[name] - cpu_before[name]) * 1000 / tick / cycles
           for name in processes}
    cpu["load generator"] = (own_after - own_before) * 1000 / cycles
    results = {}
    for kind in KINDS:
        result = Result(kind, agents, latencies=timings.get(kind, []), elapsed=wall)
        result.errors = sum(1 for k, _ in errors if k == kind)
        result.first_error = next((text for k, text in errors if k == kind), "")
        results[kind] = result
    requests_done = sum(r.count for r in results.values())
    return {"agents": agents, "results": results, "cpu": cpu, "outcomes": dict(outcomes),
            "late": late[0], "rps": requests_done / (end_of_arrivals - began), "wall": wall,
            "errors": errors}


def _service(process: str) -> str:
    """``portfolio-2`` -> ``portfolio``: the service an instance's pid file names."""
    base, _, number = process.rpartition("-")
    return base if base in SERVICES and number.isdigit() else process


def _by_service(cpu: dict[str, float]) -> dict[str, float]:
    summed: dict[str, float] = {}
    for process, ms in cpu.items():
        summed[_service(process)] = summed.get(_service(process), 0.0) + ms
    return summed


def _print_levels(levels: list[dict]) -> None:
    lines = ["", f"call centre, open loop: one cycle per agent every {CYCLE:g} s, {CYCLES} "
             f"cycles per level; {os.cpu_count()} CPUs shared by the load generator, the "
             f"gateway, the services, PostgreSQL and RabbitMQ",
             f"{'agents':>6}  {'kind':<7} {'calls':>6} {'errors':>6} {'p50 ms':>8} "
             f"{'p95 ms':>8} {'p99 ms':>8}"]
    for level in levels:
        for kind, r in level["results"].items():
            lines.append(f"{level['agents']:>6}  {kind:<7} {r.count:>6} {r.errors:>6} "
                         f"{r.p50:>8.1f} {r.percentile(95):>8.1f} {r.p99:>8.1f}")
        lines.append(f"{'':>6}  requests/s {level['rps']:.1f}; cycles {level['outcomes']}; "
                     f"late cycles {level['late']}; level took {level['wall']:.0f} s")
        for kind, text in level["errors"][:3]:
            lines.append(f"{'':>6}  first errors: {kind}: {text}")
    by_service = [_by_service(level["cpu"]) for level in levels]
    names = list(by_service[0])
    lines += ["", "CPU ms per cycle, by process (a service's instances summed)",
              f"{'agents':>6}  " + " ".join(f"{n[:10]:>10}" for n in names)]
    for level, cpu in zip(levels, by_service):
        lines.append(f"{level['agents']:>6}  " + " ".join(f"{cpu[n]:>10.1f}" for n in names))
    for level in levels:
        shares = [(service, [(n, ms) for n, ms in level["cpu"].items() if _service(n) == service])
                  for service in names]
        split = "; ".join(f"{service} " + " + ".join(f"{ms:.1f} ({n})" for n, ms in parts)
                          for service, parts in shares if len(parts) > 1)
        if split:
            lines.append(f"{level['agents']:>6}  instances: {split}")
    held = [lv["agents"] for lv in levels if all(
        r.count and r.p99 < TARGET_P99_MS and not r.errors
        for r in lv["results"].values() if r.count or r.errors)]
    lines.append("")
    lines.append(f"largest N held (p99 < {TARGET_P99_MS:g} ms for every kind, no errors): "
                 + (str(max(held)) if held else "none of the levels run"))
    print("\n".join(lines))


@pytest.fixture(scope="module")
def db():
    with psycopg.connect(_dsn(), autocommit=True) as conn:
        yield conn


def test_call_centre_open_loop(stack_url, db):
    subprocess.run([stack.PYTHON, "-m", "recaudo_common.cli", "seed"], check=True, cwd=ROOT,
                   capture_output=True, timeout=300)          # the default profiles
    _cleanup(db)
    try:
        with ClusterRpcProxy(settings().nameko, timeout=1800,
                             context_data={"identity": sign(ADMIN, ttl=7200)}) as proxy:
            world = _make_world(db, proxy)
        levels = [run_level(stack_url, world, n, db) for n in sorted(LEVELS)]
        _print_levels(levels)
        worked = sum(lv["outcomes"].get("worked", 0) for lv in levels)
        assert worked, "no agent worked an account: " + repr(levels[0]["errors"][:3])
    finally:
        _cleanup(db)
