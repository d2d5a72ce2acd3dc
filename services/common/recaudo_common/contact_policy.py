"""The one contact policy: may this debtor be contacted now, on this channel?

Contact is allowed inside the institution's window (default 07:00-22:00) in the
debtor's local time, and never on a channel marked do-not-contact. Every place
about to contact someone asks here: the next-account pull (in SQL, over many
accounts at once), sending email or fax and logging an outbound call (in Python,
``verdict_for`` over the portfolio's debtor view, then ``enforce``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Time, and_, cast, func, not_

from .errors import Conflict

DEFAULT_ZONE = "America/Mexico_City"
DEFAULT_FROM = time(7, 0)
DEFAULT_UNTIL = time(22, 0)


#: why a contact is refused (callers name the field to blame after it)
DO_NOT_CONTACT = "do_not_contact"
OUTSIDE_HOURS = "outside_hours"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str = ""
    cause: str = ""   # DO_NOT_CONTACT or OUTSIDE_HOURS when refused


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


def verdict_for(view: dict, channel: str, to: str | None,
                now: datetime | None = None) -> Verdict:
    """The verdict for contacting the debtor of ``view`` (the portfolio's debtor view:
    ``institution``, ``debtor``, ``phones``, ``emails``, ``addresses``) at ``to`` on
    ``channel`` ("email", "letter" with ``to`` the address id, or a number's: "call",
    "fax", "sms"), at ``now`` (default: now; a call logged later is judged when it started).
    A letter is judged on do-not-contact only: the post brings it at no hour of ours.

    The debtor's zone is their own, else their first address's, else the institution's;
    the address or number is blocked when the debtor's matching one is do-not-contact."""
    institution, debtor = view["institution"], view["debtor"]
    zone = debtor.get("time_zone") or next(
        (a["time_zone"] for a in view.get("addresses") or () if a.get("time_zone")), None) \
        or institution.get("time_zone")
    if channel == "email":
        address = (to or "").strip().lower()
        blocked = bool(address) and any(e["address"].lower() == address and e["do_not_contact"]
                                        for e in view.get("emails") or ())
    elif channel == "letter":
        blocked = any(str(a.get("id")) == str(to) and a.get("do_not_contact")
                      for a in view.get("addresses") or ())
    else:
        number = phone_digits(to)
        blocked = bool(number) and any(phone_digits(p["number"]) == number and p["do_not_call"]
                                       for p in view.get("phones") or ())
    return may_contact(time_zone=zone,
                       window_from=_window_time(institution.get("contact_from"), DEFAULT_FROM),
                       window_until=_window_time(institution.get("contact_until"), DEFAULT_UNTIL),
                       do_not_contact=blocked, now=now, hours=channel != "letter")


def enforce(verdict: Verdict, field: str, override: dict | None, identity,
            permission: str) -> str | None:
    """A refused contact raises ``Conflict`` naming ``field`` with the reason, unless the
    caller holds ``permission`` and gives ``override["justification"]``; answers the record
    of that override to keep with the contact (None when the policy allowed it)."""
    if verdict.allowed:
        return None
    if override is None:
        raise Conflict(verdict.reason, {field: [verdict.reason]})
    identity.require(permission)
    return f"{verdict.reason}. Autorizado por {identity.username}: {override['justification']}"


def sql_may_contact(time_zone, window_from, window_until, do_not_contact):
    """The same rule as a SQL condition over columns (for set-based pulls)."""
    local_time = cast(func.timezone(func.coalesce(time_zone, DEFAULT_ZONE), func.now()), Time)
    return and_(not_(do_not_contact), local_time.between(window_from, window_until))
