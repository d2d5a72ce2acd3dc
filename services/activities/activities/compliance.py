"""Contact compliance: the versioned policies per jurisdiction, what they judge a contact
on (the debt's calls here, the debtor's preferences and consent), and the append-only
log of every verdict that refused a contact or was overridden.

It lives here because this service keeps the contacts the frequency rule counts: the
policy, the count and the verdict's record are read and written in one database. The
rules themselves are ``recaudo_common.contact_policy`` (one engine for every channel).
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from recaudo_common import contact_policy
from recaudo_common.contact_policy import Verdict
from recaudo_common.identity import Identity
from recaudo_common.validation import page_of

from .models import Activity, ComplianceEntry, ContactPolicy, DebtorPreferences
from .contracts import ComplianceEntryOut, PolicyOut, PreferencesOut

JURISDICTION = r"^([A-Z]{2}|\*)$"
CSV_COLUMNS = ("at", "username", "channel", "to", "institution_id", "debtor_id", "account_id",
               "rule", "policy_version", "decision", "reason", "justification")


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- policies ------------------------------------------------------------------------------

def policy_in_force(session: Session, jurisdiction: str | None, at: datetime) -> dict:
    """The jurisdiction's latest version effective by ``at`` (else the default's)."""
    for code in ((jurisdiction or "").upper(), "*"):
        row = session.execute(
            select(ContactPolicy).where(ContactPolicy.jurisdiction == code,
                                        ContactPolicy.effective_from <= at)
            .order_by(ContactPolicy.version.desc()).limit(1)).scalar_one_or_none()
        if row is not None:
            return {"jurisdiction": row.jurisdiction, "version": row.version, "rules": row.rules}
    return contact_policy.seeded_policy(jurisdiction)


def list_policies(session: Session, jurisdiction: str | None = None) -> list[dict]:
    query = select(ContactPolicy).order_by(ContactPolicy.jurisdiction, ContactPolicy.version)
    if jurisdiction:
        query = query.where(ContactPolicy.jurisdiction == jurisdiction.upper())
    return PolicyOut(many=True).dump(session.execute(query).scalars())


def save_policy(session: Session, identity: Identity, jurisdiction: str, data: dict) -> dict:
    """A new version of the jurisdiction's policy (the earlier ones stay, as evidence)."""
    # the latest row locked: two officers writing at once get consecutive versions (the
    # unique version guards a jurisdiction's very first one)
    latest = session.execute(select(ContactPolicy.version).where(
        ContactPolicy.jurisdiction == jurisdiction).order_by(ContactPolicy.version.desc())
        .limit(1).with_for_update()).scalar()
    rules = [{("from" if k == "from_" else k): v for k, v in rule.items()}
             for rule in data["rules"]]
    row = ContactPolicy(jurisdiction=jurisdiction, version=(latest or 0) + 1,
                        effective_from=data["effective_from"], rules=rules,
                        note=data.get("note", ""), created_by=identity.user_id,
                        created_by_name=identity.username)
    session.add(row)
    session.flush()
    return PolicyOut().dump(row)


# --- what a verdict is judged on ------------------------------------------------------------

def history_of(session: Session, account_id: int, at: datetime, days: int = 31) -> dict:
    """The debt's calls the frequency rule counts: outbound call attempts and telephone
    conversations (a call, either way, that reached the debtor), as first logged (a
    correction restates an entry, it is not another call), in the ``days`` before ``at``."""
    rows = session.execute(
        select(Activity.started_at, Activity.direction, Activity.contact_made)
        .where(Activity.account_id == account_id, Activity.kind == "call",
               Activity.corrects_id.is_(None),
               Activity.started_at >= at - timedelta(days=days), Activity.started_at <= at)
    ).all()
    return {"call_attempts": [r.started_at for r in rows if r.direction == "outbound"],
            "conversations": [r.started_at for r in rows if r.contact_made]}


def preferences_of(session: Session, debtor_id: int) -> dict:
    row = session.get(DebtorPreferences, debtor_id)
    return PreferencesOut().dump(row) if row is not None else {}


def judge(session: Session, view: dict, channel: str, to: str | None,
          at: datetime | None = None) -> Verdict:
    """The engine's verdict on contacting the debtor of ``view`` (the portfolio's contact
    view of the account) on ``channel`` at ``to``, at ``at``: the jurisdiction's policy in
    force then, over the debt's calls and the debtor's preferences."""
    at = at or _now()
    policy = policy_in_force(session, view["institution"].get("jurisdiction"), at)
    account = view.get("account") or {}
    history = history_of(session, account["id"], at) if account.get("id") else {}
    return contact_policy.verdict_for(view, channel, to, now=at, policy=policy, history=history,
                                      preferences=preferences_of(session, view["debtor"]["id"]))


#: who may override a refusal, by channel: calls and visits are the activities' own
OVERRIDE_PERMISSIONS = {"call": "activities.manage", "visit": "activities.manage"}


def check(session: Session, identity: Identity, view: dict, channel: str, to: str | None,
          override: dict | None) -> dict:
    """Judge a contact another service is about to make (messaging's email, SMS, fax,
    letter) under the stored policy in force: a refusal is logged and answered (the caller
    raises it), an override - with the permission for the channel - logged and answered
    with the record to keep with the contact."""
    verdict = judge(session, view, channel, to)
    answer = {"allowed": verdict.allowed, "rule": verdict.rule, "cause": verdict.cause,
              "reason": verdict.reason, "policy_version": verdict.policy_version,
              "override": None}
    if verdict.allowed:
        return answer
    if override is None:
        record(session, identity, view, channel, to, verdict)
        return answer
    answer["override"] = contact_policy.enforce(
        verdict, "compliance", override, identity,
        OVERRIDE_PERMISSIONS.get(channel, "messaging.manage"))
    record(session, identity, view, channel, to, verdict, override["justification"])
    return answer


def announce_hold(session: Session, db, view: dict, at: datetime | None = None) -> None:
    """Tell the queues until when the account may not be called (after a call is logged or
    the debtor's word changes), in the caller's transaction."""
    at = at or _now()
    account = view["account"]
    policy = policy_in_force(session, view["institution"].get("jurisdiction"), at)
    held = contact_policy.hold_until(policy, history_of(session, account["id"], at),
                                     preferences_of(session, view["debtor"]["id"]), at)
    db.emit(session, "contact_hold_changed", {
        "account_id": account["id"], "institution_id": account["institution_id"],
        "hold_until": held})


# --- the compliance log ---------------------------------------------------------------------

def record(session: Session, identity: Identity, view: dict, channel: str, to: str | None,
           verdict: Verdict, justification: str | None = None) -> None:
    """Keep a refused (no ``justification``) or overridden verdict in the log."""
    account = view.get("account") or {}
    session.add(ComplianceEntry(
        institution_id=view["institution"]["id"], debtor_id=view["debtor"]["id"],
        account_id=account.get("id"), user_id=identity.user_id, username=identity.username,
        channel=channel, to=(to or None) and str(to)[:254],
        rule=verdict.rule or verdict.cause, policy_version=verdict.policy_version,
        decision="overridden" if justification else "refused", reason=verdict.reason,
        justification=justification))


def _filtered(identity: Identity, query: dict):
    stmt = select(ComplianceEntry)
    if not identity.all_institutions:
        stmt = stmt.where(ComplianceEntry.institution_id.in_(identity.institutions or (-1,)))
    for name in ("institution_id", "debtor_id", "account_id", "channel", "rule", "decision"):
        if query.get(name) is not None:
            stmt = stmt.where(getattr(ComplianceEntry, name) == query[name])
    if query.get("since"):
        stmt = stmt.where(ComplianceEntry.at >= query["since"])
    if query.get("until"):
        stmt = stmt.where(ComplianceEntry.at < query["until"])
    return stmt.order_by(ComplianceEntry.at.desc(), ComplianceEntry.id.desc())


def list_log(session: Session, identity: Identity, query: dict) -> dict:
    stmt = _filtered(identity, query)
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    rows = session.execute(stmt.limit(query["per_page"])
                           .offset((query["page"] - 1) * query["per_page"])).scalars()
    return page_of(ComplianceEntryOut(many=True).dump(rows), total, query["page"],
                   query["per_page"])


def log_csv(session: Session, identity: Identity, query: dict, limit: int = 100_000) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in session.execute(_filtered(identity, query).limit(limit)).scalars():
        writer.writerow(ComplianceEntryOut().dump(row))
    return out.getvalue()


# --- preferences ------------------------------------------------------------------------------

def save_preferences(session: Session, identity: Identity, debtor: dict, data: dict) -> dict:
    """Replace the fields given of the debtor's preferences (``debtor``: the portfolio's)."""
    row = session.get(DebtorPreferences, debtor["id"], with_for_update=True)
    if row is None:
        row = DebtorPreferences(debtor_id=debtor["id"], institution_id=debtor["institution_id"],
                                consent={}, inconvenient=[])
        session.add(row)
    if "consent" in data:
        consent = dict(row.consent or {})
        for channel, given in data["consent"].items():
            consent[channel] = {k: (v.isoformat() if isinstance(v, datetime) else v)
                                for k, v in given.items()}
        row.consent = consent
    if "inconvenient" in data:
        row.inconvenient = [{("from" if k == "from_" else k): v for k, v in span.items()}
                            for span in data["inconvenient"]]
    for name in ("cease_at", "attorney", "language"):
        if name in data:
            setattr(row, name, data[name])
    row.updated_by, row.updated_at = identity.user_id, _now()
    session.flush()
    return PreferencesOut().dump(row)
