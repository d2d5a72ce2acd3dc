"""Result-code catalogues and settings of the demo institutions (``recaudo seed``), and the
demo's past (``recaudo seed-live``).

Other institutions get the same defaults the first time the service touches them
(``catalogue.ensure_catalogue``), so a real installation needs no seed at all.
Idempotent: an institution that has a catalogue keeps it as its admin left it.

``seed_live`` gives each demo institution about ninety days of work by the demo collectors:
calls, visits, emails, letters and notes with a mix of results that differs per collector,
promises (single and plans) of which some were kept by payments, some broken and some are
pending, disputes open and resolved (some past their SLA, by every outcome, a share of the
open ones resolved today through ``disputes.resolve`` so that the current month's report
has resolutions even on its first day), and callbacks for today and tomorrow. It runs
while the services are up and writes through this service's own functions, set-based as
a history of thousands of entries wants - the hash chain (``chain.append_many``), the
productivity rollup, ``promises.make_many``, ``agenda.create``, ``promises.expire`` - with
their events held and written in one insert to this service's outbox
(``recaudo_common.db.Outbox.held``), which the running relay publishes to the queues service.
The payments that keep promises are imported through the portfolio's own import path (each
demo institution's payments layout, in its own format: CSV or XLSX, its encoding, delimiter,
dates and decimals), so ``payment_received`` keeps them as it would any day.
Idempotent: an institution whose demo entries exist (idempotency keys ``demo-…``) is left
alone.
"""
from __future__ import annotations

import csv
import io
import random
import time
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from recaudo_common import demo
from recaudo_common.db import Outbox, make_engine
from recaudo_common.identity import Identity

from . import agenda, chain, disputes, productivity, promises
from .catalogue import ensure_catalogue
from .contracts import DISPUTE_OUTCOMES
from .models import Activity, AgendaItem, Base, Dispute, InstitutionSettings, Payment, ResultCode

HISTORY_DAYS = 90
#: share of the accounts in arrears (and of the current ones) worked in the demo's past
WORKED, WORKED_CURRENT = 0.35, 0.03
#: result codes of an outbound call, weighted per collector (gestor1 reaches more people)
CALL_RESULTS = {
    "gestor1": {"NC": 24, "BZ": 12, "CT": 14, "PP": 13, "CONV": 4, "LLM": 8, "TER": 6,
                "NEG": 5, "YAPAGO": 3, "ACL": 3, "COLG": 3, "NEQ": 3, "NSERV": 2},
    "gestor2": {"NC": 32, "BZ": 16, "CT": 10, "PP": 8, "CONV": 2, "LLM": 9, "TER": 5,
                "NEG": 7, "YAPAGO": 2, "ACL": 2, "COLG": 4, "NEQ": 2, "NSERV": 2},
}
#: callbacks asked for in the last days are on today's or tomorrow's agenda
CALLBACK_DAYS = 4
VISIT_RESULTS = {"VNL": 3, "VSC": 3, "CT": 3, "PP": 2}
#: share of the promises not due yet whose first instalment is paid today, early
PAID_EARLY_TODAY = 0.3
#: share of the disputes still open (opened a day ago or more) the supervisor resolves today
RESOLVED_TODAY = 0.3
#: the outcomes of the demo's past resolutions, drawn (today's take turns by institution)
DRAWN_OUTCOMES = ("confirmed_debt", "confirmed_debt", "corrected_balance", "cancelled")
KINDS = {"call": 70, "visit": 5, "email": 9, "letter": 6, "note": 7, "inbound": 3}
DESCRIPTIONS = {
    "NC": "Se marcó sin respuesta.", "BZ": "Se dejó mensaje en buzón.",
    "CT": "Se habló con el titular; revisará su situación.",
    "PP": "El titular se compromete a pagar.", "CONV": "Acepta convenio en parcialidades.",
    "LLM": "Pide que se le llame más tarde.", "TER": "Contestó un familiar; se dejó recado.",
    "NEG": "Se niega a pagar.", "YAPAGO": "Dice que ya pagó; se pide comprobante.",
    "ACL": "No reconoce un cargo; solicita aclaración.", "COLG": "Colgó la llamada.",
    "NEQ": "El número no corresponde al titular.", "NSERV": "Número fuera de servicio.",
    "VNL": "No se localizó el domicilio.", "VSC": "Nadie en el domicilio; se dejó aviso.",
}


def demo_outbound_number(institution_id: int) -> str:
    return f"5550{institution_id:06d}"


def seed_demo() -> None:
    engine = make_engine(pool_size=1)
    try:
        with Session(engine) as session, session.begin():
            for institution_id, _, _ in demo.INSTITUTIONS:
                ensure_catalogue(session, institution_id)
                # the number the demo's calls go out from (MX: no hidden caller id)
                session.execute(update(InstitutionSettings).where(
                    InstitutionSettings.institution_id == institution_id,
                    InstitutionSettings.outbound_number.is_(None)).values(
                    outbound_number=demo_outbound_number(institution_id)))
    finally:
        engine.dispose()


def seed_live(proxy, institutions: tuple[int, ...] | None = None,
              wait_seconds: float = 120.0) -> dict:
    """The demo's past for ``institutions`` (the demo ones by default); answers what was
    made per institution. ``proxy``: started proxies carrying the platform's identity."""
    institutions = institutions or tuple(i for i, _, _ in demo.INSTITUTIONS)
    engine = make_engine(pool_size=1)
    events = Outbox(Base, "activities")
    made = {}
    try:
        for institution_id in institutions:
            with Session(engine) as session, session.begin():
                if session.execute(select(Activity.id).where(
                        Activity.institution_id == institution_id,
                        Activity.idempotency_key.like("demo-%")).limit(1)).first():
                    continue
                ensure_catalogue(session, institution_id)
                facts = _facts(proxy, institution_id)
                made[institution_id] = _History(session, events, institution_id).write(facts)
        kept = [p for m in made.values() for p in m.pop("payments")]
        if kept:
            _import_payments(proxy, kept, engine, wait_seconds)
        with Session(engine) as session, session.begin():
            for institution_id in made:
                today = datetime.now(ZoneInfo(demo.ZONE)).date()
                made[institution_id]["broken"] = promises.expire(session, events, today,
                                                                 [institution_id])
    finally:
        engine.dispose()
    return made


def _facts(proxy, institution_id: int) -> list[dict]:
    facts, after = [], 0
    while True:
        page = proxy.portfolio.account_facts_page(institution_id, after, 5000)
        if not page:
            return facts
        facts += page
        after = page[-1]["account_id"]


class _History:
    """One institution's past, drawn from a fixed seed (the same demo on every machine):
    drawn first, entry by entry, then written set-based through the service's own batch
    functions (``chain.append_many``, ``promises.make_many``, one ``productivity.bump`` per
    rollup row) with its events held and written to the outbox in one insert."""

    def __init__(self, session: Session, events: Outbox, institution_id: int):
        self.session, self.events, self.institution_id = session, events, institution_id
        self.rnd = random.Random(2026 + institution_id)
        self.zone = ZoneInfo(demo.ZONE)
        self.now = datetime.now(timezone.utc)
        self.today = self.now.astimezone(self.zone).date()
        self.codes = {c.code: c for c in session.execute(select(ResultCode).where(
            ResultCode.institution_id == institution_id)).scalars()}
        self.agents = [name for name, insts in demo.GESTOR_INSTITUTIONS.items()
                       if institution_id in insts] or list(demo.GESTOR_INSTITUTIONS)
        self.open_disputes = set(session.execute(select(Dispute.account_id).where(
            Dispute.institution_id == institution_id, Dispute.state == "open")).scalars())
        self.counts = {"activities": 0, "promises": 0, "disputes": 0, "agenda": 0,
                       "payments": []}
        self.drafts: list[dict] = []
        self.disputes: list[Dispute] = []
        self.balances: dict[int, Decimal] = {}

    def write(self, facts: list[dict]) -> dict:
        for account in facts:
            share = WORKED_CURRENT if account["stage"] == "current" else WORKED
            if self.agents and self.rnd.random() < share:
                self._account(account, self.rnd.choice(self.agents))
        with self.events.held(self.session):
            self._store()
        return self.counts

    def _store(self) -> None:
        """The drafted entries with their rollups, promises, callbacks and disputes."""
        drafts = self.drafts
        if not drafts:
            return
        heads = chain.lock_heads(self.session, {d["entry"]["account_id"]: self.institution_id
                                                for d in drafts})
        activities = chain.append_many(self.session, heads, [d["entry"] for d in drafts])
        self.counts["activities"] += len(activities)
        rollup: dict[tuple, Counter] = {}
        for draft, activity in zip(drafts, activities):
            deltas = rollup.setdefault((draft["day"], activity.agent_id), Counter())
            deltas.update(productivity.entry_deltas(activity.kind, activity.contact_made))
            if draft["plan"]:
                deltas.update(promises.made_deltas(draft["plan"]))
        for (day, agent_id), deltas in rollup.items():
            productivity.bump(self.session, day, agent_id, self.institution_id, None, **deltas)
        promised = [(d, a) for d, a in zip(drafts, activities) if d["plan"]]
        made = promises.make_many(self.session, self.events,
                                  [(a, d["plan"], d["day"]) for d, a in promised])
        self.counts["promises"] += len(made)
        promised_by = {a.id: promise.id for (_, a), (promise, _) in zip(promised, made)}
        for (draft, _), (promise, _) in zip(promised, made):
            for payment in draft["payments"]:
                self.counts["payments"].append(dict(
                    payment, reference=f"DEMO-{promise.id}-{payment.pop('number')}"))
        for draft, activity in zip(drafts, activities):
            if draft["callback_at"] is not None:
                agenda.create(self.session, self.events, AgendaItem(
                    institution_id=self.institution_id, account_id=activity.account_id,
                    debtor_id=activity.debtor_id,
                    kind="visit" if activity.kind == "visit" else "callback",
                    due_at=draft["callback_at"], agent_id=activity.agent_id,
                    note="Volver a llamar", activity_id=activity.id,
                    created_by=activity.agent_id))
                self.counts["agenda"] += 1
        self._store_disputes()
        for draft, activity in zip(drafts, activities):
            code = draft["code"]
            self.events.emit(self.session, "activity_logged", {
                "activity_id": activity.id, "account_id": activity.account_id,
                "institution_id": activity.institution_id, "debtor_id": activity.debtor_id,
                "agent_id": activity.agent_id, "queue_id": None, "kind": activity.kind,
                "direction": activity.direction, "started_at": activity.started_at,
                "result_code": activity.result_code, "contact_made": activity.contact_made,
                "needs_promise": bool(code and code.needs_promise),
                "invalidates_phone": bool(code and code.invalidates_phone),
                "schedules_callback": bool(code and code.schedules_callback), "phone": None,
                "callback_at": draft["callback_at"], "corrects_id": None,
                "promise_id": promised_by.get(activity.id)})

    def _moment(self, day: date, future: bool = False) -> datetime:
        """A working hour of ``day`` in the institution's zone, in UTC: never in the future
        (an entry), or at least an hour ahead (``future``: a callback)."""
        local = datetime(day.year, day.month, day.day, self.rnd.randint(9, 18),
                         self.rnd.randint(0, 59), self.rnd.randint(0, 59),
                         self.rnd.randint(0, 999_999), tzinfo=self.zone)
        moment = local.astimezone(timezone.utc)
        if future:
            return max(moment, self.now + timedelta(hours=1, minutes=self.rnd.randint(0, 120)))
        return min(moment, self.now - timedelta(minutes=30))

    def _account(self, account: dict, agent: str) -> None:
        entries = self.rnd.choices((1, 2, 3, 4, 5, 6), weights=(25, 25, 20, 14, 10, 6))[0]
        days = sorted(self.today - timedelta(days=self.rnd.randint(0, HISTORY_DAYS - 1))
                      for _ in range(entries))
        for n, day in enumerate(days, start=1):
            started = self._moment(day)
            kind = self.rnd.choices(tuple(KINDS), weights=tuple(KINDS.values()))[0]
            direction = "inbound" if kind == "inbound" else "outbound"
            kind = "call" if kind == "inbound" else kind
            weights = VISIT_RESULTS if kind == "visit" else CALL_RESULTS[agent] \
                if kind == "call" else None
            code = self.codes[self.rnd.choices(tuple(weights), weights=tuple(weights.values()))[0]] \
                if weights else None
            self._entry(account, agent, n, started, kind, direction, code)

    def _entry(self, account, agent, n, started, kind, direction, code) -> None:
        agent_id = demo.USER_IDS[agent]
        details, plan = {}, None
        if code is not None and code.needs_promise:
            plan = self._plan(account, code.code, started)
            details["promise"] = promises.plan_details(plan)
        callback_at = None
        if code is not None and code.schedules_callback and (
                self.today - started.astimezone(self.zone).date()).days <= CALLBACK_DAYS:
            # today's or tomorrow's agenda, at a working hour still ahead
            callback_at = self._moment(self.today + timedelta(days=self.rnd.randint(0, 1)),
                                       future=True)
            details["callback_at"] = callback_at.isoformat()
        description = DESCRIPTIONS.get(code.code if code else "", {
            "email": "Se envió estado de cuenta por correo.",
            "letter": "Se envió carta de cobranza al domicilio.",
            "note": "Nota interna: revisar historial de pagos.",
            "call": "Llamada recibida del titular."}.get(kind, ""))
        entry = {
            "institution_id": self.institution_id, "account_id": account["account_id"],
            "debtor_id": account["debtor_id"], "agent_id": agent_id, "logged_by": agent_id,
            "queue_id": None, "kind": kind, "direction": direction, "phone": None,
            "email": None, "address": None, "started_at": started,
            "ended_at": started + timedelta(minutes=self.rnd.randint(1, 9)) if kind == "call" else None,
            "result_code_id": code.id if code else None, "result_code": code.code if code else None,
            "contact_made": bool(code and code.contact_made), "description": description,
            "details": details, "corrects_id": None,
            "idempotency_key": f"demo-{account['account_id']}-{n}",
            "recorded_at": started + timedelta(minutes=self.rnd.randint(10, 40), microseconds=n)}
        day = started.astimezone(self.zone).date()
        self.drafts.append({"entry": entry, "day": day, "code": code, "plan": plan,
                            "callback_at": callback_at,
                            "payments": self._maybe_paid(account, plan, day) if plan else []})
        if code is not None and code.code == "ACL":
            self._dispute(account, agent_id, day)

    def _plan(self, account: dict, code: str, started: datetime) -> list[dict]:
        day = started.astimezone(self.zone).date()
        owed = Decimal(account["overdue_amount"]) or Decimal(account["balance"]) / 10
        owed = max(owed.quantize(Decimal("1.00")), Decimal("300.00"))
        if code == "CONV":   # a plan: three monthly instalments
            part = (owed / 3).quantize(Decimal("1.00"))
            return [{"number": k, "due_date": day + timedelta(days=7 + 30 * (k - 1)),
                     "amount": part} for k in (1, 2, 3)]
        return [{"number": 1, "due_date": day + timedelta(days=self.rnd.randint(2, 10)),
                 "amount": owed}]

    def _maybe_paid(self, account: dict, plan: list[dict], made_on: date) -> list[dict]:
        """About half the promises already due were kept: a payment before the due date
        (its reference names the promise once it is stored); of those not due yet some
        first instalments are paid early, today (the supervisor's day has recovery)."""
        due = [p for p in plan if p["due_date"] < self.today]
        if not due:
            if self.rnd.random() >= PAID_EARLY_TODAY:
                return []
            return [{"account_id": account["account_id"], "institution_id": self.institution_id,
                     "amount": plan[0]["amount"], "number": plan[0]["number"],
                     "value_date": self.today}]
        if self.rnd.random() >= 0.5:
            return []
        return [{"account_id": account["account_id"], "institution_id": self.institution_id,
                 "amount": part["amount"], "number": part["number"],
                 "value_date": max(part["due_date"] - timedelta(days=self.rnd.randint(0, 2)),
                                   made_on)}
                for part in due]

    def _dispute(self, account: dict, agent_id: int, day: date) -> None:
        """A dispute opened that day (one open per account): resolved some days later when
        old enough (mostly within its 10-day SLA, never in the future), else open - past its
        SLA when opened over 10 days ago. Some open ones are resolved today (``_store``)."""
        if account["account_id"] in self.open_disputes:
            return
        opened = self._moment(day)
        dispute = Dispute(institution_id=self.institution_id, account_id=account["account_id"],
                          debtor_id=account["debtor_id"], reason="No reconoce un cargo",
                          evidence="El titular indica que el cargo no corresponde.",
                          opened_by=agent_id, owner_id=demo.USER_IDS["supervisor"],
                          opened_at=opened, due_date=day + timedelta(days=10), state="open")
        self.balances[account["account_id"]] = Decimal(account["balance"])
        age = (self.today - day).days
        if age > 3 and self.rnd.random() < 0.7:
            dispute.state, dispute.outcome = "resolved", self.rnd.choice(DRAWN_OUTCOMES)
            if dispute.outcome == "corrected_balance":
                dispute.corrected_balance = self._corrected(account["account_id"])
            dispute.resolution_note = "Se revisaron los movimientos con el área de pagos."
            dispute.resolved_by = demo.USER_IDS["supervisor"]
            dispute.resolved_at = min(opened + timedelta(days=self.rnd.randint(1, min(age - 1, 12)),
                                                         hours=self.rnd.randint(0, 6)),
                                      self.now - timedelta(hours=1))
        else:
            self.open_disputes.add(account["account_id"])
        self.disputes.append(dispute)

    def _corrected(self, account_id: int) -> Decimal:
        """A corrected balance: the account's balance less a charge found wrong."""
        balance = self.balances[account_id]
        return (balance * Decimal(self.rnd.randint(80, 97)) / 100).quantize(Decimal("0.01"))

    def _store_disputes(self) -> None:
        """The drafted disputes, announced as opened (and resolved, the older ones)."""
        self.session.add_all(self.disputes)
        self.session.flush()
        for dispute in self.disputes:
            self.events.emit(self.session, "dispute_opened", {
                "dispute_id": dispute.id, "account_id": dispute.account_id,
                "institution_id": dispute.institution_id, "owner_id": dispute.owner_id,
                "due_date": dispute.due_date})
            if dispute.state == "resolved":
                self.events.emit(self.session, "dispute_resolved", {
                    "dispute_id": dispute.id, "account_id": dispute.account_id,
                    "institution_id": dispute.institution_id, "outcome": dispute.outcome,
                    "corrected_balance": dispute.corrected_balance})
        self.counts["disputes"] += len(self.disputes)
        # the supervisor's work of today: some of the open disputes resolved by the service
        supervisor = Identity(user_id=demo.USER_IDS["supervisor"], username="supervisor",
                              profile="supervisor", institutions=(self.institution_id,))
        # (the latest opened before today, likely within its SLA, and a share of the others
        # but the oldest: the month's report has resolutions on its first day, and some of
        # the open ones stay overdue)
        waiting = sorted((d for d in self.disputes if d.state == "open"
                          and d.opened_at.astimezone(self.zone).date() < self.today),
                         key=lambda d: d.opened_at)
        today = waiting[-1:] + [d for d in waiting[1:-1] if self.rnd.random() < RESOLVED_TODAY] \
            if len(waiting) > 1 else []
        for k, dispute in enumerate(today):   # the three institutions' first: three outcomes
            outcome = DISPUTE_OUTCOMES[(self.institution_id + k) % len(DISPUTE_OUTCOMES)]
            disputes.resolve(self.session, self.events, supervisor, dispute.id, {
                "outcome": outcome, "note": "Se revisaron los movimientos con el área de pagos.",
                "corrected_balance": self._corrected(dispute.account_id)
                if outcome == "corrected_balance" else None})
            self.open_disputes.discard(dispute.account_id)


def _import_payments(proxy, payments: list[dict], engine, wait_seconds: float) -> None:
    """The payments that kept promises, imported per institution through its payments
    layout (as a file an administrator uploads), then waited for: each payment's
    ``payment_received`` reaches this service, which keeps the promise."""
    by_institution: dict[int, list[dict]] = {}
    for payment in payments:
        by_institution.setdefault(payment["institution_id"], []).append(payment)
    with Session(engine) as session:
        before = session.execute(select(func.count()).select_from(Payment).where(
            Payment.institution_id.in_(list(by_institution)))).scalar_one()
    references, jobs = [], []
    for institution_id, rows in by_institution.items():
        layout = next((l for l in proxy.portfolio.list_layouts(institution_id)
                       if l["kind"] == "payments"), None)
        if layout is None:
            continue
        numbers = {}
        for row in rows:
            if row["account_id"] not in numbers:
                numbers[row["account_id"]] = proxy.portfolio.get_account(
                    row["account_id"])["account_number"]
            references.append(row["reference"])
        body = _payments_file(layout, [(numbers[r["account_id"]], r["amount"], r["value_date"],
                                        r["reference"]) for r in rows])
        created = proxy.portfolio.create_import({"layout_id": layout["id"],
                                                 "file_name": f"pagos_demo.{layout['file_format']}",
                                                 "size_bytes": len(body)})
        requests.put(created["upload_url"], data=body, timeout=60).raise_for_status()
        jobs.append(proxy.portfolio.start_import(created["job"]["id"]))
    deadline = time.monotonic() + wait_seconds   # the institutions' imports run side by side
    for job in jobs:
        while job["finished_at"] is None and time.monotonic() < deadline:
            time.sleep(0.5)
            job = proxy.portfolio.get_import(job["id"])
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:   # the promises are kept when the events are in
        with Session(engine) as session:
            applied = session.execute(select(func.count()).select_from(Payment).where(
                Payment.institution_id.in_(list(by_institution)))).scalar_one()
        if applied >= before + len(references):
            return
        time.sleep(0.5)


def _payments_file(layout: dict, rows: list[tuple]) -> bytes:
    """``rows`` (account number, amount, value date, reference) as a file of ``layout``: an
    XLSX with real dates and numbers, or a CSV in its encoding, delimiter, date format and
    decimal separator (no thousands separator, which every layout reads)."""
    columns = layout["columns"]
    header = [columns["account_number"], columns["amount"], columns["value_date"],
              columns["reference"]]
    if layout["file_format"] == "xlsx":
        import openpyxl

        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(header)
        for number, amount, day, reference in rows:
            sheet.append([number, float(amount), day, reference])
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()
    text = io.StringIO()
    writer = csv.writer(text, delimiter=layout["delimiter"])
    writer.writerow(header)
    for number, amount, day, reference in rows:
        writer.writerow([number, f"{amount:.2f}".replace(".", layout["decimal_separator"]),
                         day.strftime(layout["date_format"]), reference])
    return text.getvalue().encode(layout["encoding"])  # the names are Python codecs too
