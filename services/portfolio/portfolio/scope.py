"""Which accounts a caller may see, as SQL conditions every portfolio query applies.

Institution scope first (a creditor sees only its institution); then, unless the
profile reads the whole portfolio (``portfolio.read_all``), a collector or lawyer
sees only the accounts assigned to them, and a supervisor those of their team; besides,
a pending callback on someone's agenda opens its account to them (a callback delegated to
a colleague must be workable by that colleague; the account stays assigned, the strategy
decides assignments).
Anything outside answers ``NotFound``, exactly like something missing.
"""
from __future__ import annotations

from sqlalchemy import or_, select, true

from recaudo_common.identity import Identity

from .models import Account, CallbackHolder


def institution_clause(identity: Identity, column):
    if identity.all_institutions:
        return true()
    return column.in_(identity.institutions or (-1,))


def account_clause(identity: Identity):
    """Accounts (table ``Account``) this identity may read."""
    identity.require("portfolio.read")
    clause = institution_clause(identity, Account.institution_id)
    if identity.has("portfolio.read_all"):
        return clause
    people = (identity.user_id, *identity.team)
    holding = select(CallbackHolder.account_id).where(CallbackHolder.agent_id.in_(people))
    return clause & or_(Account.assigned_agent_id.in_(people), Account.lawyer_id.in_(people),
                        Account.id.in_(holding))
