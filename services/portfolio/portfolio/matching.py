"""Finding debtors from what an inbound email or SMS carries (for the messaging service):
the sender's address or number, and account or customer numbers its patterns found.

Each debtor found is answered with one account to log the message on: the most
overdue of the debtor's accounts in the institution (the one a collector works).
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recaudo_common.contact_policy import phone_digits

from .models import Account, Debtor, Email, Phone

LIMIT = 500


def _main_accounts(session: Session, institution_id: int, debtor_ids) -> dict[int, int]:
    if not debtor_ids:
        return {}
    ranked = select(Account.debtor_id, Account.id, func.row_number().over(
        partition_by=Account.debtor_id,
        order_by=(Account.days_past_due.desc(), Account.id)).label("n")).where(
        Account.institution_id == institution_id, Account.debtor_id.in_(list(debtor_ids))
    ).subquery()
    return dict(session.execute(select(ranked.c.debtor_id, ranked.c.id)
                                .where(ranked.c.n == 1)).all())


def match(session: Session, institution_id: int, emails, account_numbers,
          customer_numbers, phones=()) -> dict:
    emails = sorted({str(e).strip().lower() for e in emails or ()})[:LIMIT]
    account_numbers = sorted({str(n).strip() for n in account_numbers or ()})[:LIMIT]
    customer_numbers = sorted({str(n).strip() for n in customer_numbers or ()})[:LIMIT]
    by_email = session.execute(
        select(Email.address, Debtor.id).join(Debtor, Debtor.id == Email.debtor_id)
        .where(Debtor.institution_id == institution_id, Email.address.in_(emails))
        .order_by(Email.address, Debtor.id)).all() if emails else []
    by_customer = session.execute(
        select(Debtor.customer_number, Debtor.id).where(
            Debtor.institution_id == institution_id,
            Debtor.customer_number.in_(customer_numbers))).all() if customer_numbers else []
    by_account = session.execute(
        select(Account.account_number, Account.debtor_id, Account.id).where(
            Account.institution_id == institution_id,
            Account.account_number.in_(account_numbers))).all() if account_numbers else []
    # a number as a phone sends it (+52 55...) or as it was imported (55...): the last ten
    # digits are the national number
    wanted = {p: {p, p[-10:]} for p in (phone_digits(n) for n in phones or ()) if p}
    by_phone = session.execute(
        select(Phone.number, Phone.id, Debtor.id).join(Debtor, Debtor.id == Phone.debtor_id)
        .where(Debtor.institution_id == institution_id,
               Phone.number.in_(sorted(set().union(*wanted.values()))[:LIMIT]))
        .order_by(Debtor.id)).all() if wanted else []
    main = _main_accounts(session, institution_id,
                          {d for _, d in by_email} | {d for _, d in by_customer}
                          | {d for _, _, d in by_phone})
    out = {"emails": {}, "account_numbers": {}, "customer_numbers": {}, "phones": {}}
    for asked, candidates in wanted.items():
        for number, phone_id, debtor_id in by_phone:
            if number in candidates and debtor_id in main:
                out["phones"].setdefault(asked, []).append(
                    {"debtor_id": debtor_id, "account_id": main[debtor_id], "phone_id": phone_id})
    for address, debtor_id in by_email:
        if debtor_id in main:
            out["emails"].setdefault(address, []).append(
                {"debtor_id": debtor_id, "account_id": main[debtor_id]})
    for number, debtor_id in by_customer:
        if debtor_id in main:
            out["customer_numbers"][number] = {"debtor_id": debtor_id, "account_id": main[debtor_id]}
    for number, debtor_id, account_id in by_account:
        out["account_numbers"][number] = {"debtor_id": debtor_id, "account_id": account_id}
    return out
