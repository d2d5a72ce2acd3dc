"""Payments from outside the files: the instructions a debtor pays by (reference, CLABE,
convenio) and the institution's bank details behind them."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert

from recaudo_common.errors import NotFound

from . import payment_refs, portal, search
from .models import Account, Institution, PaymentSettings


def instructions(session, identity, account_id: int) -> dict:
    """What a debtor needs to pay ``account_id``, for whoever may read the account (and for
    the debtor's own portal session). The amount due is what is overdue, else the whole
    balance."""
    account: Account = (portal.own_account(session, identity, account_id)
                        if identity.debtor_id is not None
                        else search.visible_account(session, identity, account_id))
    bank = session.get(PaymentSettings, account.institution_id)
    reference = payment_refs.reference_for(session, account)
    overdue = account.overdue_amount or Decimal(0)
    return {
        "account_id": account.id, "account_number": account.account_number,
        "institution_id": account.institution_id, "reference": reference,
        "clabe": bank.clabe if bank else None, "bank_name": bank.bank_name if bank else "",
        "beneficiary": bank.beneficiary if bank else "",
        "convenio": bank.convenio if bank else "", "spei_concept": reference,
        "amount_due": overdue if overdue > 0 else account.balance, "balance": account.balance,
        "currency": account.currency}


def get_settings(session, identity, institution_id: int) -> dict:
    identity.require_institution(institution_id)
    if session.get(Institution, institution_id) is None:
        raise NotFound("Institución no encontrada")
    bank = session.get(PaymentSettings, institution_id)
    return {"institution_id": institution_id, "clabe": bank.clabe if bank else None,
            "bank_name": bank.bank_name if bank else "",
            "beneficiary": bank.beneficiary if bank else "",
            "convenio": bank.convenio if bank else ""}


def save_settings(session, identity, institution_id: int, data: dict) -> dict:
    identity.require_institution(institution_id)
    if session.get(Institution, institution_id) is None:
        raise NotFound("Institución no encontrada")
    row = insert(PaymentSettings).values(institution_id=institution_id, **data)
    session.execute(row.on_conflict_do_update(
        index_elements=[PaymentSettings.institution_id],
        set_={**{k: row.excluded[k] for k in data}, "updated_at": func.now()}))
    return get_settings(session, identity, institution_id)
