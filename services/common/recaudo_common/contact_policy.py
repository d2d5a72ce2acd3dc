"""The one contact policy: may this debtor be contacted now, on this channel?

A policy is data: one per jurisdiction (the institution's), versioned, a list of rules
evaluated in order; the first that refuses names itself and the policy version in the
verdict. ``SEEDED`` holds the first version of each (MX, US, and the default: the window
only); the activities service keeps later versions an officer writes and hands them in.
Every place about to contact someone asks here: the next-account pull (in SQL, over many
accounts at once), sending email or fax and logging an outbound call (in Python,
``verdict_for`` over the portfolio's debtor view, then ``enforce``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Time, and_, cast, func, not_

from .errors import Conflict

DEFAULT_ZONE = "America/Mexico_City"
DEFAULT_FROM = time(7, 0)
DEFAULT_UNTIL = time(22, 0)


#: why a contact is refused (callers name the field to blame after it)
DO_NOT_CONTACT = "do_not_contact"
OUTSIDE_HOURS = "outside_hours"
#: the rules a policy may list (each refusal's ``rule``; the first two are also causes)
WINDOW = "window"
CEASE = "cease_communication"
ATTORNEY = "attorney"
INCONVENIENT = "inconvenient_time"
FREQUENCY = "call_frequency"
THIRD_PARTY = "third_party"
#: a call's outbound number must be known (and is kept with the entry): no hidden caller id
CALLER_ID = "caller_id"
#: refuses nothing: an agreement (promise or plan) made is sent to the debtor in writing
WRITTEN_AGREEMENT = "written_agreement"
RULES = (DO_NOT_CONTACT, WINDOW, CEASE, ATTORNEY, INCONVENIENT, FREQUENCY, THIRD_PARTY,
         CALLER_ID, WRITTEN_AGREEMENT)

#: the seeded version of each jurisdiction's policy ("*" is every other jurisdiction);
#: the migrations wrote them (MX-1 lacked the caller id and the written agreement)
SEEDED = {
    "MX": {"jurisdiction": "MX", "version": 2, "rules": [
        {"rule": DO_NOT_CONTACT},
        {"rule": WINDOW, "from": "07:00", "until": "22:00"},
        {"rule": THIRD_PARTY},
        {"rule": CALLER_ID},
        {"rule": WRITTEN_AGREEMENT},
    ]},
    "US": {"jurisdiction": "US", "version": 1, "rules": [
        {"rule": DO_NOT_CONTACT},
        {"rule": CEASE},
        {"rule": ATTORNEY},
        {"rule": WINDOW, "from": "08:00", "until": "21:00"},
        {"rule": INCONVENIENT},
        {"rule": FREQUENCY, "attempts": 7, "days": 7},
    ]},
    "*": {"jurisdiction": "*", "version": 1, "rules": [
        {"rule": DO_NOT_CONTACT},
        {"rule": WINDOW},
    ]},
}


def seeded_policy(jurisdiction: str | None) -> dict:
    return SEEDED.get((jurisdiction or "").upper(), SEEDED["*"])


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""
    cause: str = ""   # DO_NOT_CONTACT or OUTSIDE_HOURS when refused by those; else the rule
    rule: str = ""    # the policy rule that refused
    policy_version: str = ""   # "US-1": the jurisdiction and version that judged


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def may_contact(*, time_zone: str | None, window_from: time = DEFAULT_FROM,
                window_until: time = DEFAULT_UNTIL, do_not_contact: bool = False,
                now: datetime | None = None, hours: bool = True) -> Verdict:
    """``hours=False`` for what reaches the debtor at no hour we choose (a letter)."""
    if do_not_contact:
        return Verdict(False, "El deudor pidió no ser contactado por este medio", DO_NOT_CONTACT)
    if not hours:
        return Verdict(True)
    local = (now or datetime.now(timezone.utc)).astimezone(_zone(time_zone))
    if not window_from <= local.time() <= window_until:
        return Verdict(False, f"Fuera del horario permitido ({window_from:%H:%M}-"
                              f"{window_until:%H:%M} hora local del deudor; allí son "
                              f"las {local:%H:%M})", OUTSIDE_HOURS)
    return Verdict(True)


def phone_digits(value: str | None) -> str:
    """A phone or fax number as its digits only (how numbers are compared)."""
    return "".join(c for c in value or "" if c.isdigit())


def _window_time(value, default: time) -> time:
    """An institution's ``contact_from``/``contact_until`` as the view carries it ("HH:MM")."""
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value) if value else default
    except (TypeError, ValueError):
        return default


def _debtor_zone(view: dict) -> str | None:
    """The debtor's own zone, else their first address's, else the institution's."""
    return view["debtor"].get("time_zone") or next(
        (a["time_zone"] for a in view.get("addresses") or () if a.get("time_zone")), None) \
        or view["institution"].get("time_zone")


def _blocked(view: dict, channel: str, to: str | None) -> bool:
    """Whether the debtor marked the address or number ``to`` do-not-contact."""
    if channel == "email":
        address = (to or "").strip().lower()
        return bool(address) and any(e["address"].lower() == address and e["do_not_contact"]
                                     for e in view.get("emails") or ())
    if channel == "letter":
        return any(str(a.get("id")) == str(to) and a.get("do_not_contact")
                   for a in view.get("addresses") or ())
    number = phone_digits(to)
    return bool(number) and any(phone_digits(p["number"]) == number and p["do_not_call"]
                                for p in view.get("phones") or ())


def _at(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _consented(preferences: dict, channel: str, at: datetime, days: int = 7) -> bool:
    """Whether the debtor's prior consent on ``channel`` covered a contact at ``at``:
    given at or before it, within ``days`` before it, and not yet withdrawn then."""
    consent = (preferences.get("consent") or {}).get(channel) or {}
    given = _at(consent.get("given_at"))
    withdrawn = _at(consent.get("withdrawn_at"))
    if given is None or not given <= at <= given + timedelta(days=days):
        return False
    return withdrawn is None or withdrawn < given or at < withdrawn


def _refusal(rule: dict, view: dict, channel: str, to: str | None, now: datetime,
             history: dict, preferences: dict) -> tuple[str, str] | None:
    """(cause, reason) when ``rule`` refuses this contact, else None."""
    name = rule["rule"]
    if name == DO_NOT_CONTACT:
        if _blocked(view, channel, to):
            return DO_NOT_CONTACT, "El deudor pidió no ser contactado por este medio"
    elif name == WINDOW:
        if channel == "letter":   # the post brings it at no hour of ours
            return None
        institution = view["institution"]
        start = max(_window_time(institution.get("contact_from"), DEFAULT_FROM),
                    _window_time(rule.get("from"), time.min))
        until = min(_window_time(institution.get("contact_until"), DEFAULT_UNTIL),
                    _window_time(rule.get("until"), time.max))
        verdict = may_contact(time_zone=_debtor_zone(view), window_from=start,
                              window_until=until, now=now)
        if not verdict.allowed:
            return OUTSIDE_HOURS, verdict.reason
    elif name == CEASE:
        if preferences.get("cease_at"):
            return CEASE, "El deudor pidió cesar toda comunicación"
    elif name == ATTORNEY:
        if (preferences.get("attorney") or {}).get("name"):
            return ATTORNEY, ("El deudor está representado por un abogado "
                              f"({preferences['attorney']['name']}): contacte al abogado")
    elif name == INCONVENIENT:
        if channel == "letter":
            return None
        local = now.astimezone(_zone(_debtor_zone(view)))
        for span in preferences.get("inconvenient") or ():
            days = span.get("weekdays")
            if (days is None or local.weekday() in days) and \
                    _window_time(span.get("from"), time.min) <= local.time() \
                    <= _window_time(span.get("until"), time.max):
                return INCONVENIENT, (f"El deudor indicó que a esta hora no le conviene "
                                      f"(allí son las {local:%H:%M})")
    elif name == FREQUENCY:
        if channel != "call" or _consented(preferences, "call", now):
            return None
        since = now - timedelta(days=int(rule.get("days", 7)))
        attempts = [t for t in map(_at, history.get("call_attempts") or ())
                    if since <= t < now and not _consented(preferences, "call", t)]
        if len(attempts) >= int(rule.get("attempts", 7)):
            return FREQUENCY, (f"Ya hubo {len(attempts)} intentos de llamada por esta deuda "
                               f"en los últimos {rule.get('days', 7)} días")
        if any(since <= t < now for t in map(_at, history.get("conversations") or ())):
            return FREQUENCY, ("Hubo una conversación telefónica sobre esta deuda en los "
                               f"últimos {rule.get('days', 7)} días")
    elif name == THIRD_PARTY:
        # judged where the debtor's numbers are on file (else there is nothing to tell by)
        if channel in ("call", "sms") and to and view.get("phones"):
            number = phone_digits(to)
            known = {phone_digits(p["number"]) for p in view.get("phones") or ()}
            known |= {phone_digits(g.get("phone")) for g in view.get("guarantors") or ()}
            if number and number not in known:
                return THIRD_PARTY, ("Número no registrado del deudor, aval o referencia: "
                                     "no se contacta a terceros")
    elif name == CALLER_ID:
        # the number the call goes out from: the logging's, else the institution's
        if channel == "call" and not phone_digits(view.get("caller_id")):
            return CALLER_ID, ("No se conoce el número desde el que se llama: no se llama "
                               "con identificador oculto (configure el número saliente de "
                               "la institución o indíquelo en la gestión)")
    return None


def requires_written_agreement(policy: dict) -> bool:
    """Whether an agreement made under ``policy`` is sent to the debtor in writing."""
    return any(rule["rule"] == WRITTEN_AGREEMENT for rule in policy["rules"])


def verdict_for(view: dict, channel: str, to: str | None,
                now: datetime | None = None, policy: dict | None = None,
                history: dict | None = None, preferences: dict | None = None) -> Verdict:
    """The verdict for contacting the debtor of ``view`` (the portfolio's debtor view:
    ``institution``, ``debtor``, ``phones``, ``emails``, ``addresses``) at ``to`` on
    ``channel`` ("email", "letter" with ``to`` the address id, or a number's: "call",
    "fax", "sms"), at ``now`` (default: now; a call logged later is judged when it started).

    ``policy`` is the jurisdiction's policy in force (default: the seeded one of the
    view's institution's jurisdiction); ``history`` what the frequency rule counts on this
    debt (``call_attempts``, ``conversations``: start times); ``preferences`` the debtor's
    (``cease_at``, ``attorney``, ``consent`` per channel, ``inconvenient`` spans). A call's
    outbound number is the view's ``caller_id`` (the caller id rule). Rules
    are evaluated in order; the first refusal is the verdict."""
    policy = policy or seeded_policy(view["institution"].get("jurisdiction"))
    version = f"{policy['jurisdiction']}-{policy['version']}"
    now = now or datetime.now(timezone.utc)
    for rule in policy["rules"]:
        refused = _refusal(rule, view, channel, to, now, history or {}, preferences or {})
        if refused:
            return Verdict(False, refused[1], refused[0], rule["rule"], version)
    return Verdict(True, policy_version=version)


#: a hold with no end (cease-communication, an attorney): until the debtor's word changes
FOREVER = datetime(9999, 12, 31, tzinfo=timezone.utc)


def hold_until(policy: dict, history: dict, preferences: dict,
               now: datetime | None = None) -> datetime | None:
    """Until when the policy's rules that depend on the debt, not on the hour (cease,
    attorney, call frequency), refuse calling it: None when they allow it now. What the
    set-based pull compares with its clock, so it need not count calls per account."""
    now = now or datetime.now(timezone.utc)
    rules = {rule["rule"]: rule for rule in policy["rules"]}
    if (CEASE in rules and preferences.get("cease_at")) or \
            (ATTORNEY in rules and (preferences.get("attorney") or {}).get("name")):
        return FOREVER
    rule = rules.get(FREQUENCY)
    if rule is None or _consented(preferences, "call", now):
        return None
    days = timedelta(days=int(rule.get("days", 7)))
    limit = int(rule.get("attempts", 7))
    attempts = sorted((t for t in map(_at, history.get("call_attempts") or ())
                       if now - days < t <= now and not _consented(preferences, "call", t)),
                      reverse=True)
    ends = [attempts[limit - 1] + days] if len(attempts) >= limit else []
    ends += [t + days for t in map(_at, history.get("conversations") or ())
             if now - days < t <= now]
    return max(ends) if ends else None


def enforce(verdict: Verdict, field: str, override: dict | None, identity,
            permission: str) -> str | None:
    """A refused contact raises ``Conflict`` naming ``field`` with the reason, unless the
    caller holds ``permission`` and gives ``override["justification"]``; answers the record
    of that override to keep with the contact (None when the policy allowed it)."""
    if verdict.allowed:
        return None
    if override is None:
        raise Conflict(verdict.reason, refusal_fields(verdict, field))
    identity.require(permission)
    return f"{verdict.reason}. Autorizado por {identity.username}: {override['justification']}"


def refusal_fields(verdict: Verdict, field: str) -> dict:
    """The 409's fields: the one to blame, and the rule, reason and policy version."""
    return {field: [verdict.reason], "rule": [verdict.rule or verdict.cause],
            "reason": [verdict.reason], "policy_version": [verdict.policy_version]}


def sql_may_contact(time_zone, window_from, window_until, do_not_contact):
    """The same rule as a SQL condition over columns (for set-based pulls)."""
    local_time = cast(func.timezone(func.coalesce(time_zone, DEFAULT_ZONE), func.now()), Time)
    return and_(not_(do_not_contact), local_time.between(window_from, window_until))
