"""The "Ver cartera" list, the free-text search and the debtor's 360° view.

The free text is routed to the index that answers it fast on a million debtors:
a phone as people write it (``+52 55 1234 5678``, ``(55) 1234-5678``) → its digits
without a country code as a phone prefix, or, 7-8 digits, also as the end of a number
(a local number without area code; b-tree on the reversed number), plus customer and
account numbers (b-tree); an address with "@" → email prefix; words → each word, in any
order, inside the name without case or accents (trigram GIN on
``portfolio.search_text(name)``, an immutable ``unaccent``), one word also as the start
of an email address, plus exact customer, account and tax numbers. Every query carries
the caller's scope.
"""
from __future__ import annotations

import re
import unicodedata

from sqlalchemy import BigInteger, Select, any_, cast, func, literal_column, select, text, union
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.orm import Session

from recaudo_common.errors import NotFound
from recaudo_common.identity import Identity
from recaudo_common.validation import page_of

from . import contacts
from .contracts import ACCOUNT_SORTS
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
assert tuple(SORTS) == ACCOUNT_SORTS
#: a count over more rows than this is reported as "at least" (pages stay fast)
COUNT_CAP = 10_000


#: shortest word searched inside names: the trigram index cannot serve one or two letters
#: (every name would be read), so a shorter word only narrows what a longer one found, and
#: a text of short words only matches numbers and codes exactly
MIN_NAME_TEXT = 3
#: a phone's national number (Mexico's 10 digits); longer typed numbers carry a country code
NATIONAL_DIGITS = 10
#: 7 or 8 digits typed may be a local number without its 3- or 2-digit area code: matched
#: against the end of the stored numbers too
LOCAL_DIGITS = (7, 8)
_PHONE_SEPARATORS = re.compile(r"[\s()+./-]")
_EMAIL_PREFIX = re.compile(r"[a-z0-9._%+-]+")


def search_text(text: str) -> str:
    """Text as search compares it: lower case, without accents (what ``unaccent`` does
    for Spanish: ``MUÑOZ`` -> ``munoz``, ``GUTIÉRREZ`` -> ``gutierrez``), spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.lower().split())


def phone_query(text: str) -> str | None:
    """The digits of ``text`` when it is a phone number as people write it (digits with
    spaces, dashes, dots, parentheses, a leading +), without a country code, as imports
    store numbers: after a "+" the last 10 digits, else 52 or 521 before 10 digits dropped.
    None when the text is something else."""
    digits = re.sub(r"\D", "", text)
    if not digits or len(digits) != len(_PHONE_SEPARATORS.sub("", text)):
        return None
    if text.startswith("+") or text.startswith("00"):
        return digits[-NATIONAL_DIGITS:]
    for code in ("52", "521"):
        if len(digits) == len(code) + NATIONAL_DIGITS and digits.startswith(code):
            return digits[len(code):]
    return digits


def _like_escaped(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _phone_matches(digits: str) -> list[Select]:
    """Phones that start with the digits (a prefix or the whole number), or, for a local
    number typed without its area code, that end with them (reversed-number index)."""
    parts = [select(Phone.debtor_id).where(Phone.number.startswith(digits))]
    if len(digits) in LOCAL_DIGITS:
        parts.append(select(Phone.debtor_id).where(
            func.reverse(Phone.number).startswith(digits[::-1])))
    return parts


def _name_matches(words: list[str]) -> Select | None:
    """Debtors whose name holds every word, in any order, ignoring case and accents: the
    trigram index (on ``portfolio.search_text(name)``) finds the words long enough for
    it; shorter ones only narrow that down (``strpos``: no index is asked for them)."""
    long = [w for w in words if len(w) >= MIN_NAME_TEXT]
    if not long:
        return None
    name = func.portfolio.search_text(Debtor.name)
    conditions = [name.like(func.portfolio.search_text(f"%{_like_escaped(w)}%"), escape="\\")
                  for w in long]
    conditions += [func.strpos(name, func.portfolio.search_text(w)) > 0
                   for w in words if len(w) < MIN_NAME_TEXT]
    return select(Debtor.id).where(*conditions)


def _debtor_ids_matching(text: str) -> Select:
    """Ids of debtors whose name, numbers, phones or emails match ``text``."""
    text = text.strip()
    digits = phone_query(text)
    parts = []
    if "@" in text:
        parts.append(select(Email.debtor_id).where(Email.address.startswith(text.lower(),
                                                                            autoescape=True)))
    elif digits:
        if len(digits) >= 4:
            parts += _phone_matches(digits)
        parts.append(select(Debtor.id).where(Debtor.customer_number == text))
        parts.append(select(Account.debtor_id).where(Account.account_number == text))
    else:
        words = search_text(text).split()
        names = _name_matches(words)
        if names is not None:
            parts.append(names)
        if len(words) == 1 and len(words[0]) >= MIN_NAME_TEXT and \
                _EMAIL_PREFIX.fullmatch(text.lower()):
            # one word may be the start of an e-mail address typed without its "@"
            parts.append(select(Email.debtor_id).where(
                Email.address.startswith(text.lower(), autoescape=True)))
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
    """One page of the accounts in scope that pass the filters, and their count (capped at
    COUNT_CAP) in the same query."""
    filters = [account_clause(identity)]
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
    sort = query.get("sort") or "-days_past_due"
    column = SORTS[sort.lstrip("-")]
    descending = sort.startswith("-")
    order = column.desc() if descending else column.asc()

    # The page is chosen on accounts alone (with the debtor only to sort by its name or
    # number), then joined for its rows: joined first, every candidate would be joined
    # before the sort keeps 50 of them.
    if query.get("q"):
        # A text's matches (a trigram recheck and an account lookup each) are collected once,
        # for both the page and the count. The matched debtors go in as an array, looked up
        # in accounts' debtor_id index: given as IN, the planner guesses how many there are
        # (a trigram match has no real estimate: a rare surname comes out at 1 % of all
        # debtors) and answers a high guess by reading every account.
        matching = _debtor_ids_matching(query["q"]).subquery()
        debtor_ids = cast(select(func.array_agg(matching.c[0])).scalar_subquery(),
                          ARRAY(BigInteger))
        keyed = select(Account.id, column.label("sort_key")).where(
            *filters, Account.debtor_id == any_(debtor_ids))
        if column.class_ is Debtor:
            keyed = keyed.join(Debtor, Debtor.id == Account.debtor_id)
        matched = keyed.cte("matched").prefix_with("MATERIALIZED")
        key = matched.c.sort_key.desc() if descending else matched.c.sort_key.asc()
        chosen = select(matched.c.id).order_by(key, matched.c.id)
        counted = select(matched.c.id)
    else:
        # Whether to walk the sort's index or to sort a filtered range depends on the
        # filters' values: plan with them, not with the generic plan PostgreSQL may settle
        # on once psycopg has prepared the statement (its fifth run on a connection).
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        chosen = select(Account.id).where(*filters).order_by(order, Account.id)
        if column.class_ is Debtor:
            chosen = chosen.join(Debtor, Debtor.id == Account.debtor_id)
        # on accounts alone: the page's joins never drop or repeat a row (debtor and
        # institution are non-null foreign keys, the status an outer join on its key)
        counted = select(Account.id).where(*filters)
    chosen = (chosen.offset((query["page"] - 1) * query["per_page"]).limit(query["per_page"])
              .correlate(None))
    count = (select(func.count()).select_from(counted.limit(COUNT_CAP + 1).subquery())
             .correlate(None))
    page = (select(Account, Debtor, Institution.code.label("institution_code"),
                   Status.name.label("status_name"), _primary_phone().label("phone"),
                   count.scalar_subquery().label("total"))
            .join(Debtor, Debtor.id == Account.debtor_id)
            .join(Institution, Institution.id == Account.institution_id)
            .outerjoin(Status, Status.id == Account.status_id)
            .where(Account.id.in_(chosen))
            .order_by(order, Account.id))
    rows = session.execute(page).all()
    if rows:
        total = rows[0].total
    else:   # nothing here: none at all, or a page past the end
        total = 0 if query["page"] == 1 else session.execute(count).scalar_one()
    items = [{
        "account_id": account.id, "account_number": account.account_number,
        "debtor_id": debtor.id, "customer_number": debtor.customer_number, "name": debtor.name,
        "days_past_due": account.days_past_due, "phone": phone,
        "assigned_agent_id": account.assigned_agent_id, "institution_id": account.institution_id,
        "institution": institution_code, "stage": account.stage, "status": status_name,
        "balance": account.balance, "overdue_amount": account.overdue_amount,
        "currency": account.currency,
    } for account, debtor, institution_code, status_name, phone, _ in rows]
    result = page_of(items, min(total, COUNT_CAP), query["page"], query["per_page"])
    result["total_is_exact"] = total <= COUNT_CAP
    return result


def get_debtor(session: Session, identity: Identity, debtor_id: int) -> dict:
    """The 360° view: the debtor, contacts, guarantors and the accounts the caller may see,
    in five statements (the debtor, its institution and its contacts are one)."""
    accounts = session.execute(
        select(Account, Status.name).outerjoin(Status, Status.id == Account.status_id)
        .where(Account.debtor_id == debtor_id, account_clause(identity))
        .order_by(Account.account_number)).all()
    row = session.execute(
        select(Debtor, Institution, *_DEBTOR_CONTACTS)
        .join(Institution, Institution.id == Debtor.institution_id)
        .where(Debtor.id == debtor_id)).first() if accounts else None
    if row is None:
        raise NotFound("Deudor no encontrado")
    debtor, institution, phones, emails, addresses, guarantors = row
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
    return {"debtor": debtor, "institution": institution, "phones": phones, "emails": emails,
            "addresses": addresses, "guarantors": guarantors,
            "accounts": list(by_account.values()),
            "do_not_contact_history": contacts.history(session, debtor_id)}


def _rows_as_json(model, debtor_id, *order):
    """The rows of ``model`` of the debtor ``debtor_id`` (a column of the outer statement)
    as a JSON array of objects (every column), as a subquery: a view is one statement, not
    one per kind of contact."""
    pairs = [part for column in model.__table__.columns
             for part in (literal_column(f"'{column.name}'"), column)]
    return (select(func.coalesce(
        func.json_agg(aggregate_order_by(func.json_build_object(*pairs), *order)),
        literal_column("'[]'::json")))
        .where(model.debtor_id == debtor_id).scalar_subquery())


def _contacts_of(debtor_id) -> tuple:
    """Phones (by priority), emails, addresses and guarantors (avales: who else may be
    called) of the debtor ``debtor_id``, built once per statement shape."""
    return (_rows_as_json(Phone, debtor_id, Phone.priority, Phone.id),
            _rows_as_json(Email, debtor_id, Email.id),
            _rows_as_json(Address, debtor_id, Address.id),
            _rows_as_json(Guarantor, debtor_id, Guarantor.id))


#: an account's debtor's contacts (a logging's hot path), and a debtor's (the 360° view)
_CONTACTS = _contacts_of(Account.debtor_id)
_DEBTOR_CONTACTS = _contacts_of(Debtor.id)


def contact_view(session: Session, identity: Identity, account_id) -> dict:
    """An account the caller may see with what the contact policy judges a contact by
    (institution, debtor, phones, emails, addresses, guarantors), in one statement: a logging's look-up."""
    if not isinstance(account_id, int) or isinstance(account_id, bool):
        raise NotFound("Cuenta no encontrada")
    row = session.execute(
        select(Account, Debtor, Institution, *_CONTACTS)
        .join(Debtor, Debtor.id == Account.debtor_id)
        .join(Institution, Institution.id == Account.institution_id)
        .where(Account.id == account_id, account_clause(identity))).first()
    if row is None:
        raise NotFound("Cuenta no encontrada")
    account, debtor, institution, phones, emails, addresses, guarantors = row
    return {"account": account, "debtor": debtor, "institution": institution,
            "phones": phones, "emails": emails, "addresses": addresses, "guarantors": guarantors}


def debtor_scope(session: Session, identity: Identity, debtor_id) -> dict:
    """Whether the caller may see the debtor, in one short query: its institution, name and
    the accounts the caller may see (other services check their own rows against this)."""
    if not isinstance(debtor_id, int) or isinstance(debtor_id, bool):
        raise NotFound("Deudor no encontrado")
    rows = session.execute(
        select(Debtor.institution_id, Debtor.name, Account.id)
        .join(Account, Account.debtor_id == Debtor.id)
        .where(Debtor.id == debtor_id, account_clause(identity))
        .order_by(Account.id)).all()
    if not rows:
        raise NotFound("Deudor no encontrado")
    return {"id": debtor_id, "institution_id": rows[0][0], "name": rows[0][1],
            "account_ids": [row[2] for row in rows]}


def visible_account(session: Session, identity: Identity, account_id: int) -> Account:
    account = session.execute(select(Account).where(Account.id == account_id,
                                                    account_clause(identity))).scalar_one_or_none()
    if account is None:
        raise NotFound("Cuenta no encontrada")
    return account

