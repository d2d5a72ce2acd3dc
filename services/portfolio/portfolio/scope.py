"""Which accounts a caller may see, as SQL conditions every portfolio query applies.

Institution scope first (a creditor sees only its institution); then, unless the
profile reads the whole portfolio (``portfolio.read_all``), a collector or lawyer
sees only the accounts assigned to them, and a supervisor those of their team; besides,
a pending callback on someone's agenda opens its account to them (a callback delegated to
a colleague must be workable by that colleague; the account stays assigned, the strategy
decides assignments).
Anything outside answers ``NotFound``, exactly like something missing.

The three ways in are OR-ed as conditions each index can answer: the callback holders'
accounts go in as an array (``id = ANY(...)``, the primary key), not as ``id IN (SELECT
...)``: a sub-select inside the OR is a filter run on every row the other conditions
leave, so a collector's "Ver cartera" without text read the whole portfolio (a sequential
scan for the count, the days-past-due index walked for the page) instead of combining
the agent's, the lawyer's and the key's indexes (a BitmapOr over their accounts alone).
"""
from __future__ import annotations

from sqlalchemy import BigInteger, any_, cast, func, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY

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
    # one array, computed once per statement (an InitPlan), which the primary key answers;
    # none held: NULL, and ``id = ANY(NULL)`` matches nothing, as the IN it replaces
    holding = cast(select(func.array_agg(CallbackHolder.account_id))
                   .where(CallbackHolder.agent_id.in_(people)).scalar_subquery(),
                   ARRAY(BigInteger))
    return clause & or_(Account.assigned_agent_id.in_(people), Account.lawyer_id.in_(people),
                        Account.id == any_(holding))
