"""The fault-injection run shared by the fault suite (``make test``) and ``make bench``.

It starts a private RabbitMQ and PostgreSQL (``engines.py``), the whole stack against
them with the local runner (supervisor included, in ``<var>/faults/stack``), seeds the demo
data through the ordinary seed, and puts the clients of ``load.py`` to work. Then, one
after another: ``kill -9`` of each service and of the gateway, RabbitMQ stopped for 20 s,
PostgreSQL restarted (fast, then immediate shutdown), the S3 server stopped for 10 s,
RabbitMQ back as a fresh node (reset: every queue, exchange and binding gone).
After each it waits for every process to run again and ``/healthz`` to answer 200.

At the end the clients stop and every accepted write is looked up: stored exactly once,
its ``activity_logged`` event relayed and handled by the queues service exactly once, its
promise stored once, and the queues' projection of the account's last contact agreeing
with the rows. ``FaultRun.table()`` is the table the issue asks for.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from recaudo_common.config import SERVICES, settings
from recaudo_common.demo import DEMO_PASSWORD, USER_IDS

from .engines import PrivatePostgres, PrivateRabbit
from .load import Clients

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
RUNNER = str(ROOT / "deploy" / "runner.py")
#: every process the runner supervises must run again within this long after a fault
RECOVERY_LIMIT_SECONDS = 60.0
RABBIT_OUTAGE_SECONDS = 20.0
S3_OUTAGE_SECONDS = 10.0


#: activity_logged events of the load's loggings the queues service has not handled yet
UNHANDLED = (
    "SELECT count(*) FROM activities.outbox o JOIN activities.activities a ON "
    "a.id = (o.payload->>'activity_id')::bigint WHERE o.event_type = 'activity_logged' "
    "AND a.description LIKE :m AND NOT EXISTS (SELECT 1 FROM queues.processed_events p "
    "WHERE p.event_id = o.event_id AND p.handler = 'activity_logged')")


@dataclass
class Row:
    fault: str
    started: float
    ended: float = 0.0
    settled: float = 0.0
    accepted: int = 0
    lost: int = 0
    duplicated: int = 0
    first_success: float | None = None
    seconds_5xx: float = 0.0
    dead: str = ""


class FaultRun:
    def __init__(self, clients: int = 8):
        cfg = settings()
        base = cfg.gateway_port + 1
        self.dir = (ROOT / cfg.var_dir / "faults").resolve()
        self.rabbit = PrivateRabbit(self.dir, base + 5, base + 6)
        self.pg = PrivatePostgres(self.dir, base + 4)
        self.base_url = f"http://127.0.0.1:{base}"
        self.env = {**os.environ,
                    "RECAUDO_DATABASE_URL": self.pg.url,
                    "RECAUDO_AMQP_URI": self.rabbit.amqp_uri,
                    "RECAUDO_GATEWAY_PORT": str(base),
                    "RECAUDO_S3_ENDPOINT": f"http://127.0.0.1:{base + 1}",
                    "RECAUDO_LOCAL_IMAP_PORT": str(base + 2),
                    "RECAUDO_LOCAL_SMTP_PORT": str(base + 3),
                    "RECAUDO_VAR_DIR": str(self.dir / "stack"),
                    "RECAUDO_DEMO": "0"}
        self.client_count = clients
        self.rows: list[Row] = []
        self.effects: list[str] = []
        self.clients: Clients | None = None
        self.engine = None

    # --- the world ------------------------------------------------------------------------

    def _cli(self, *args: str, demo: bool = False) -> None:
        env = dict(self.env, RECAUDO_DEMO="1" if demo else "0")
        proc = subprocess.run([PYTHON, "-m", "recaudo_common.cli", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise RuntimeError(f"recaudo {' '.join(args)}: {proc.stdout}{proc.stderr}")

    def runner(self, *args: str) -> str:
        proc = subprocess.run([PYTHON, RUNNER, *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise RuntimeError(f"runner {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def setup(self) -> None:
        shutil.rmtree(self.dir / "stack", ignore_errors=True)  # logs of this run only
        rabbit = threading.Thread(target=self.rabbit.start)  # its boot is the slow part
        rabbit.start()
        self.pg.start()
        rabbit.join()
        self._cli("createdb")
        self._cli("migrate")
        self._cli("seed", demo=True)
        self.engine = create_engine(self.pg.url, pool_size=2, pool_pre_ping=True)
        self.sql("UPDATE portfolio.institutions SET contact_from = '00:00', "
                 "contact_until = '23:59:59'")
        self.runner("up")
        accounts = []
        for user in ("gestor1", "gestor2"):
            token = self._token(user)
            ids = [r[0] for r in self.sql(
                "SELECT id FROM portfolio.accounts WHERE institution_id = 1 AND "
                "assigned_agent_id = :a AND lawyer_id IS NULL ORDER BY id LIMIT 10",
                a=USER_IDS[user])]
            accounts += [(account_id, token) for account_id in ids]
        admin = {"Authorization": f"Bearer {self._token('admin')}"}
        codes = requests.get(f"{self.base_url}/api/v1/institutions/1/result-codes",
                             headers=admin, timeout=30).json()
        code = next(c["id"] for c in codes if c["code"] == "PP")
        gestor1 = accounts[0][1]
        debtors = [(r[0], gestor1) for r in self.sql(
            "SELECT DISTINCT debtor_id FROM portfolio.accounts WHERE institution_id = 1 AND "
            "assigned_agent_id = :a AND lawyer_id IS NULL LIMIT 5", a=USER_IDS["gestor1"])]
        self.clients = Clients(self.base_url, accounts, code, count=self.client_count,
                               debtors=debtors)

    def teardown(self) -> None:
        if self.clients:
            self.clients.stop(drain_seconds=5)
        try:
            self.runner("down")
        finally:
            if self.engine is not None:
                self.engine.dispose()
            self.pg.stop()
            self.rabbit.stop()

    def _token(self, username: str) -> str:
        answer = requests.post(f"{self.base_url}/api/v1/auth/token", timeout=30,
                               json={"username": username, "password": DEMO_PASSWORD})
        answer.raise_for_status()
        return answer.json()["access_token"]

    def sql(self, statement: str, **params) -> list:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.all() if result.returns_rows else []

    # --- the faults -----------------------------------------------------------------------

    def faults(self):
        """(name, inject, restore): ``restore`` ends the fault (None: it ends at once)."""
        for name in (*SERVICES, "gateway"):
            yield f"kill -9 {name}", (lambda n=name: self._kill(n)), None
        yield (f"RabbitMQ stopped {RABBIT_OUTAGE_SECONDS:g} s", self.rabbit.stop_app,
               lambda: (time.sleep(RABBIT_OUTAGE_SECONDS), self.rabbit.start_app()))
        yield "PostgreSQL restart (fast)", (lambda: self.pg.restart("fast")), None
        yield "PostgreSQL restart (immediate)", (lambda: self.pg.restart("immediate")), None
        yield (f"S3 server stopped {S3_OUTAGE_SECONDS:g} s", lambda: self.runner("stop", "s3"),
               lambda: (time.sleep(S3_OUTAGE_SECONDS), self.runner("start", "s3")))
        yield "RabbitMQ back as a fresh node", self._fresh_broker, self.clients.resume

    def _fresh_broker(self) -> None:
        """Reset the broker (its queues, exchanges and bindings gone) once every event is
        delivered: the services must declare again all they need. The clients pause for
        it, since a reset also loses the messages queued (the broker's data, not ours)."""
        self.clients.hold()
        self._wait_for("SELECT count(*) FROM activities.outbox WHERE published_at IS NULL")
        self._wait_for(UNHANDLED, m=f"faults {self.clients.run_id} %")
        self.rabbit.reset()

    def _kill(self, name: str) -> None:
        pid = int((self.dir / "stack" / "run" / f"{name}.pid").read_text().split()[0])
        os.killpg(pid, signal.SIGKILL)

    def run(self) -> None:
        # RECAUDO_FAULTS="fresh,gateway": only the faults whose names hold one of these
        # (to look into one fault without running them all)
        only = [w.strip().lower() for w in os.environ.get("RECAUDO_FAULTS", "").split(",")
                if w.strip()]
        self.clients.start()
        time.sleep(3)  # the load is steady before the first fault
        for name, inject, restore in self.faults():
            if only and not any(w in name.lower() for w in only):
                continue
            row = Row(name, time.monotonic())
            inject()
            if restore:
                restore()
            row.ended = time.monotonic()
            row.dead = self._wait_recovered()
            time.sleep(1.0)  # some writes after recovery, for the first success
            row.settled = time.monotonic()
            self.rows.append(row)
        self.clients.stop(drain_seconds=150)
        self._check_effects()
        self.died = self._died_by_themselves()

    def _died_by_themselves(self) -> list[str]:
        """The supervisor's log lines of processes that exited other than by our kill -9:
        an outage must not kill anything (the supervisor would hide it)."""
        log = (self.dir / "stack" / "log" / "supervisor.log").read_text()
        return [line for line in log.splitlines()
                if "exited unexpectedly" in line and "killed by SIGKILL" not in line]

    def _wait_recovered(self) -> str:
        """Wait until every process runs and /healthz answers 200; name what does not."""
        deadline = time.monotonic() + RECOVERY_LIMIT_SECONDS
        while True:
            stopped = [line.split()[0] for line in self.runner("status").splitlines()
                       if " stopped" in line]
            try:
                answer = requests.get(f"{self.base_url}/healthz", timeout=5)
                healthy, failing = answer.status_code == 200, _failing(answer)
            except requests.RequestException as exc:
                healthy, failing = False, type(exc).__name__
            if not stopped and healthy:
                return ""
            if time.monotonic() > deadline:
                return ", ".join(stopped) or f"unhealthy: {failing}"
            time.sleep(0.5)

    # --- what was stored ------------------------------------------------------------------

    def _check_effects(self) -> None:
        ledger, marker = self.clients.ledger, f"faults {self.clients.run_id} %"
        stored = dict(self.sql(
            "SELECT split_part(description, ' ', 3), count(*) FROM activities.activities "
            "WHERE description LIKE :m GROUP BY 1", m=marker))
        # a document filed once is one document with one version of that name
        stored.update(self.sql(
            "SELECT replace(d.name, '.pdf', ''), count(v.id) * count(DISTINCT d.id) "
            "FROM documents.documents d JOIN documents.versions v ON v.document_id = d.id "
            "WHERE d.name LIKE :m GROUP BY 1", m=f"faults-{self.clients.run_id}-doc%"))
        accepted = dict(ledger.accepted)
        self.lost_keys = {k for k in accepted if k not in stored}
        self.duplicated_keys = {k for k, n in stored.items() if n > 1}
        for row, end in zip(self.rows, [r.started for r in self.rows[1:]] + [float("inf")]):
            window = {k for k, (_, at) in accepted.items() if row.started <= at < end}
            row.accepted = len(window)
            row.lost = len(window & self.lost_keys)
            row.duplicated = len(window & self.duplicated_keys)
            row.first_success = ledger.first_success_after(row.ended)
            row.seconds_5xx = ledger.seconds_of_5xx(row.started, row.settled)
        self.accepted_before = sum(1 for _, at in accepted.values()
                                   if not self.rows or at < self.rows[0].started)
        self.effects = self._event_effects(marker)

    def _wait_for(self, statement: str, seconds: float = 90.0, **params) -> int:
        """Poll a count until it is 0 (or the time is up); answer the last count."""
        deadline = time.monotonic() + seconds
        while True:
            count = self.sql(statement, **params)[0][0]
            if count == 0 or time.monotonic() > deadline:
                return count
            time.sleep(1)

    def _event_effects(self, marker: str) -> list[str]:
        problems = []
        pending = self._wait_for("SELECT count(*) FROM activities.outbox "
                                 "WHERE published_at IS NULL")
        if pending:
            problems.append(f"{pending} events never left the activities outbox")
        unhandled = self._wait_for(UNHANDLED, m=marker)
        if unhandled:
            problems.append(f"{unhandled} activity_logged events never handled by queues")
        events = self.sql(
            "SELECT count(*) FILTER (WHERE n = 0), count(*) FILTER (WHERE n > 1) FROM ("
            "SELECT a.id, count(o.id) n FROM activities.activities a LEFT JOIN "
            "activities.outbox o ON o.event_type = 'activity_logged' AND "
            "(o.payload->>'activity_id')::bigint = a.id WHERE a.description LIKE :m "
            "GROUP BY a.id) c", m=marker)[0]
        if events[0] or events[1]:
            problems.append(f"activity_logged events: {events[0]} activities without one, "
                            f"{events[1]} with more than one")
        promises = self.sql(
            "SELECT count(*) FILTER (WHERE n <> 1) FROM (SELECT a.id, count(p.id) n FROM "
            "activities.activities a LEFT JOIN activities.promises p ON p.activity_id = a.id "
            "WHERE a.description LIKE :m GROUP BY a.id) c", m=marker)[0][0]
        if promises:
            problems.append(f"{promises} loggings without exactly one promise")
        behind = self.sql(
            "SELECT count(*) FROM (SELECT account_id, max(started_at) latest FROM "
            "activities.activities WHERE description LIKE :m GROUP BY account_id) a "
            "JOIN queues.account_facts f USING (account_id) "
            "WHERE f.last_contact_at IS NULL OR f.last_contact_at < a.latest", m=marker)[0][0]
        if behind:
            problems.append(f"{behind} accounts whose queue projection missed their last contact")
        return problems

    def complaints(self, last: int = 60) -> str:
        """The processes' last warnings and errors: what a failed run shows besides its
        table (CI keeps no logs)."""
        lines = []
        for log in sorted((self.dir / "stack" / "log").glob("*.log")):
            lines += [f"{log.stem}: {line[:300]}" for line in log.read_text(errors="replace")
                      .splitlines() if " WARNING " in line or " ERROR " in line]
        lines.sort(key=lambda line: line.split(": ", 1)[1][:23])   # by their timestamps
        return "\n".join(lines[-last:])

    def table(self) -> str:
        head = ("fault", "accepted", "lost", "duplicated", "s to first success", "s of 5xx",
                "dead")
        lines = [f"{head[0]:32} {head[1]:>8} {head[2]:>5} {head[3]:>10} {head[4]:>18} "
                 f"{head[5]:>8}  {head[6]}"]
        for r in self.rows:
            first = f"{r.first_success:.1f}" if r.first_success is not None else "never"
            lines.append(f"{r.fault:32} {r.accepted:8} {r.lost:5} {r.duplicated:10} "
                         f"{first:>18} {r.seconds_5xx:8.1f}  {r.dead or '-'}")
        total = sum(r.accepted for r in self.rows) + self.accepted_before
        documents = sum(1 for key in self.clients.ledger.accepted if "-doc" in key)
        lines.append(f"{self.client_count} clients; {total} writes accepted in all "
                     f"({documents} of them documents filed), {len(self.lost_keys)} lost, "
                     f"{len(self.duplicated_keys)} duplicated, "
                     f"{len(self.clients.ledger.refused)} refused, "
                     f"{len(self.died)} processes died by themselves; "
                     f"event effects: {'; '.join(self.effects) or 'all exactly once'}")
        return "\n".join(lines)


def _failing(answer: requests.Response) -> str:
    """What ``/healthz`` says is failing, e.g. ``documents RpcTimeout``: the table then
    names the service left unhealthy, not only that one was."""
    try:
        services = answer.json()["services"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {answer.status_code}"
    return ", ".join(f"{name} {report.get('error', '')}".strip()
                     for name, report in services.items() if report.get("status") != "ok")
