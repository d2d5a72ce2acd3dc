"""What the debtor portal asks of the portfolio: whether a second factor is right (for
auth, as the platform: the debtor's data never leaves this service for it) and, for a
debtor's own portal session (``Identity.debtor``), their accounts with this institution.

A debtor principal reaches only the accounts of its own debtor in its own institution;
any other account answers like a missing one.
"""
from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from recaudo_common.errors import NotFound, PermissionDenied
from recaudo_common.identity import ALL_PERMISSIONS, Identity

from .models import Account, Debtor, Institution, Instalment, Movement
from .contracts import PortalOverview

PORTAL_MOVEMENTS = 100


def require_platform(identity: Identity) -> None:
    if ALL_PERMISSIONS not in identity.permissions:
        raise PermissionDenied("Sólo la plataforma", {"permission": [ALL_PERMISSIONS]})


def _norm(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", (text or "").upper())


def _as_date(answer: str) -> date | None:
    answer = (answer or "").strip()
    for pattern, order in ((r"^(\d{4})-(\d{1,2})-(\d{1,2})$", (0, 1, 2)),
                           (r"^(\d{1,2})/(\d{1,2})/(\d{4})$", (2, 1, 0))):
        found = re.match(pattern, answer)
        if found:
            parts = [int(p) for p in found.groups()]
            try:
                return date(parts[order[0]], parts[order[1]], parts[order[2]])
            except ValueError:
                return None
    return None


def factor_matches(session: Session, institution_id: int, debtor_id: int, kind: str,
                   answer: str) -> bool:
    """Whether ``answer`` is the debtor's ``kind`` of second factor (a debtor without that
    datum never matches)."""
    debtor = session.get(Debtor, debtor_id)
    if debtor is None or debtor.institution_id != institution_id or not isinstance(answer, str):
        return False
    if kind == "birth_date":
        return debtor.birth_date is not None and _as_date(answer) == debtor.birth_date
    given = _norm(answer)
    if len(given) != 4:
        return False
    if kind == "rfc_last4":
        return bool(debtor.tax_id) and _norm(debtor.tax_id)[-4:] == given
    if kind == "account_last4":
        numbers = session.execute(select(Account.account_number)
                                  .where(Account.debtor_id == debtor_id)).scalars()
        return any(_norm(n)[-4:] == given for n in numbers)
    return False


def own_accounts(session: Session, identity: Identity) -> list[Account]:
    identity.require_debtor()
    return session.execute(select(Account).where(
        Account.debtor_id == identity.debtor_id,
        Account.institution_id == identity.debtor_institution_id)
        .order_by(Account.account_number)).scalars().all()


def own_account(session: Session, identity: Identity, account_id) -> Account:
    identity.require_debtor()
    account = session.get(Account, account_id) if isinstance(account_id, int) else None
    if account is None:
        raise NotFound("Cuenta no encontrada")
    identity.require_own(account.institution_id, account.debtor_id)
    return account


def overview(session: Session, identity: Identity) -> dict:
    """The debtor's accounts with this institution: balance, overdue amount, instalments
    and the latest movements."""
    accounts = own_accounts(session, identity)
    debtor = session.get(Debtor, identity.debtor_id)
    if debtor is None:
        raise NotFound("No encontrado")
    institution = session.get(Institution, identity.debtor_institution_id)
    ids = [a.id for a in accounts] or [-1]
    instalments = session.execute(select(Instalment).where(Instalment.account_id.in_(ids))
                                  .order_by(Instalment.account_id, Instalment.number)).scalars()
    movements = session.execute(select(Movement).where(Movement.account_id.in_(ids))
                                .order_by(Movement.value_date.desc(), Movement.id.desc())
                                .limit(PORTAL_MOVEMENTS)).scalars()
    by_account = {a.id: {"account": a, "instalments": [], "movements": []} for a in accounts}
    for instalment in instalments:
        by_account[instalment.account_id]["instalments"].append(instalment)
    for movement in movements:
        by_account[movement.account_id]["movements"].append(movement)
    return PortalOverview().dump({
        "debtor_id": debtor.id, "name": debtor.name, "institution_id": institution.id,
        "institution": institution.name, "currency": institution.currency,
        "time_zone": debtor.time_zone or institution.time_zone,
        "accounts": list(by_account.values())})


def close_by_settlement(session: Session, settlement: dict) -> int | None:
    """The account's remaining balance written off by one adjustment movement (once per
    settlement: its reference is the promise's) and its instalments settled; the account
    id when something changed."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    account = session.execute(select(Account).where(Account.id == settlement["account_id"])
                              .with_for_update()).scalar_one_or_none()
    if account is None or account.institution_id != settlement["institution_id"]:
        return None
    remaining = account.balance
    written = session.execute(pg_insert(Movement).values(
        account_id=account.id, kind="adjustment", amount=-remaining,
        value_date=settlement["value_date"],
        reference=f"LIQ-{settlement['promise_id']}")
        .on_conflict_do_nothing(index_elements=["account_id", "kind", "reference"])
        .returning(Movement.id)).first()
    if written is None:
        return None
    account.balance = 0
    account.overdue_amount = 0
    for instalment in session.execute(select(Instalment).where(
            Instalment.account_id == account.id,
            Instalment.paid_amount < Instalment.amount)).scalars():
        instalment.paid_amount = instalment.amount
    session.flush()
    return account.id
