"""The "Ver cartera" list, the free-text search and the debtor's 360° view.

The free text is routed to the index that answers it fast on a million debtors:
digits → phone prefix, customer number, account number (btree); an address with
"@" → email prefix; words → trigram match on the name (GIN ``gin_trgm_ops``), plus
exact customer and account numbers. Every query carries the caller's scope.
"""
from __future__ import annotations

import re

from sqlalchemy import Select, and_, func, literal_column, select, union
from sqlalchemy.orm import Session

from recaudo_common.errors import NotFound
from recaudo_common.identity import Identity
from recaudo_common.validation import page_of

from .models import (Account, Address, Debtor, Email, Guarantor, Institution, Instalment, Movement,
                     Phone, Status)
from .scope import account_clause

SORTS = {
    "days_past_due": Account.days_past_due,
    "balance": Account.balance,
    "overdue_amount": Account.overdue_amount,
    "name": Debtor.name,
    "customer_number": Debtor.customer_number,
    "account_number": Account.account_number,
}
#: a count over more rows than this is reported as "at least" (pages stay fast)
COUNT_CAP = 10_000


def _debtor_ids_matching(text: str) -> Select:
    """Ids of debtors whose name, numbers, phones or emails match ``text``."""
    text = text.strip()
    digits = re.sub(r"\D", "", text)
    parts = []
    if "@" in text:
        parts.append(select(Email.debtor_id).where(Email.address.startswith(text.lower(),
                                                                            autoescape=True)))
    elif digits and len(digits) == len(re.sub(r"[\s()+.-]", "", text)):
        if len(digits) >= 4:
            parts.append(select(Phone.debtor_id).where(Phone.number.startswith(digits)))
        parts.append(select(Debtor.id).where(Debtor.customer_number == text))
        parts.append(select(Account.debtor_id).where(Account.account_number == text))
    else:
        parts.append(select(Debtor.id).where(Debtor.name.icontains(text, autoescape=True)))
        parts.append(select(Debtor.id).where(Debtor.customer_number == text))
        parts.append(select(Account.debtor_id).where(Account.account_number == text))
        if len(text) <= 20:
            parts.append(select(Debtor.id).where(Debtor.tax_id == text.upper()))
    return union(*parts) if len(parts) > 1 else parts[0]


def _primary_phone():
    return (select(Phone.number).where(Phone.debtor_id == Debtor.id, Phone.valid)
            .order_by(Phone.do_not_call, Phone.priority, Phone.id).limit(1)
            .correlate(Debtor).scalar_subquery())


def list_accounts(session: Session, identity: Identity, query: dict) -> dict:
    stmt = (select(Account, Debtor, Institution.code.label("institution_code"),
                   Status.name.label("status_name"), _primary_phone().label("phone"))
            .join(Debtor, Debtor.id == Account.debtor_id)
            .join(Institution, Institution.id == Account.institution_id)
            .outerjoin(Status, Status.id == Account.status_id)
            .where(account_clause(identity)))
    filters = []
    if query.get("institution_id") is not None:
        filters.append(Account.institution_id == query["institution_id"])
    if query.get("stage"):
        filters.append(Account.stage == query["stage"])
    if query.get("status_id") is not None:
        filters.append(Account.status_id == query["status_id"])
    if query.get("dpd_min") is not None:
        filters.append(Account.days_past_due >= query["dpd_min"])
    if query.get("dpd_max") is not None:
        filters.append(Account.days_past_due <= query["dpd_max"])
    if query.get("balance_min") is not None:
        filters.append(Account.balance >= query["balance_min"])
    if query.get("balance_max") is not None:
        filters.append(Account.balance <= query["balance_max"])
    if query.get("assigned_agent_id") is not None:
        filters.append(Account.assigned_agent_id == query["assigned_agent_id"])
    if query.get("q"):
        filters.append(Account.debtor_id.in_(_debtor_ids_matching(query["q"])))
    stmt = stmt.where(and_(*filters))

    capped = select(literal_column("1")).select_from(
        stmt.with_only_columns(Account.id).limit(COUNT_CAP + 1).subquery())
    total = session.execute(select(func.count()).select_from(capped.subquery())).scalar_one()

    sort = query.get("sort") or "-days_past_due"
    column = SORTS[sort.lstrip("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    rows = session.execute(stmt.order_by(order, Account.id)
                           .offset((query["page"] - 1) * query["per_page"])
                           .limit(query["per_page"])).all()
    items = [{
        "account_id": account.id, "account_number": account.account_number,
        "debtor_id": debtor.id, "customer_number": debtor.customer_number, "name": debtor.name,
        "days_past_due": account.days_past_due, "phone": phone,
        "assigned_agent_id": account.assigned_agent_id, "institution_id": account.institution_id,
        "institution": institution_code, "stage": account.stage, "status": status_name,
        "balance": account.balance, "overdue_amount": account.overdue_amount,
        "currency": account.currency,
    } for account, debtor, institution_code, status_name, phone in rows]
    result = page_of(items, min(total, COUNT_CAP), query["page"], query["per_page"])
    result["total_is_exact"] = total <= COUNT_CAP
    return result


def get_debtor(session: Session, identity: Identity, debtor_id: int) -> dict:
    """The 360° view: the debtor, contacts, guarantors and the accounts the caller may see."""
    accounts = session.execute(
        select(Account, Status.name).outerjoin(Status, Status.id == Account.status_id)
        .where(Account.debtor_id == debtor_id, account_clause(identity))
        .order_by(Account.account_number)).all()
    debtor = session.get(Debtor, debtor_id) if accounts else None
    if debtor is None:
        raise NotFound("Deudor no encontrado")
    account_ids = [a.id for a, _ in accounts]
    instalments = session.execute(select(Instalment).where(Instalment.account_id.in_(account_ids))
                                  .order_by(Instalment.account_id, Instalment.number)).scalars()
    movements = session.execute(select(Movement).where(Movement.account_id.in_(account_ids))
                                .order_by(Movement.value_date.desc(), Movement.id.desc())
                                .limit(500)).scalars()
    by_account: dict[int, dict] = {a.id: {"account": a, "status": s, "instalments": [],
                                          "movements": []} for a, s in accounts}
    for instalment in instalments:
        by_account[instalment.account_id]["instalments"].append(instalment)
    for movement in movements:
        by_account[movement.account_id]["movements"].append(movement)

    def of(model):
        return session.execute(select(model).where(model.debtor_id == debtor_id)
                               .order_by(model.id)).scalars().all()

    return {"debtor": debtor, "institution": session.get(Institution, debtor.institution_id),
            "phones": sorted(of(Phone), key=lambda p: (p.priority, p.id)),
            "emails": of(Email), "addresses": of(Address), "guarantors": of(Guarantor),
            "accounts": list(by_account.values())}


def visible_account(session: Session, identity: Identity, account_id: int) -> Account:
    account = session.execute(select(Account).where(Account.id == account_id,
                                                    account_clause(identity))).scalar_one_or_none()
    if account is None:
        raise NotFound("Cuenta no encontrada")
    return account

