"""Result-code catalogue defaults and per-institution settings.

The service never reads the portfolio's institutions table, so an institution's
catalogue is created the first time anything here touches that institution (and by
``recaudo seed`` for the demo institutions); both paths insert the same defaults and
keep whatever an admin already changed.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from recaudo_common.contact_policy import DEFAULT_ZONE

from .models import InstitutionSettings, ResultCode

#: (code, label, contact_made, needs_promise, invalidates_phone, schedules_callback)
DEFAULT_CODES = (
    ("CT", "Contacto con titular", True, False, False, False),
    ("PP", "Promesa de pago", True, True, False, False),
    ("CONV", "Convenio de pagos en parcialidades", True, True, False, False),
    ("YAPAGO", "Dice que ya pagó", True, False, False, False),
    ("NEG", "Negativa de pago", True, False, False, False),
    ("ACL", "Solicita aclaración", True, False, False, False),
    ("LLM", "Llamar más tarde", False, False, False, True),
    ("TER", "Contacto con tercero (deja recado)", False, False, False, True),
    ("NC", "No contesta", False, False, False, False),
    ("BZ", "Buzón de voz", False, False, False, False),
    ("COLG", "Cuelga la llamada", False, False, False, False),
    ("NEQ", "Número equivocado", False, False, True, False),
    ("NSERV", "Número fuera de servicio", False, False, True, False),
    ("FALL", "Titular fallecido", False, False, False, False),
    ("VNL", "Visita: domicilio no localizado", False, False, False, False),
    ("VSC", "Visita: no se encontró al titular", False, False, False, True),
)

SETTINGS_DEFAULTS = {"dispute_sla_days": 10, "attribution_days": 30, "time_zone": DEFAULT_ZONE}


def ensure_catalogue(session: Session, institution_id: int) -> None:
    """Give an institution the default settings and codes unless it has some already."""
    session.execute(insert(InstitutionSettings).values(institution_id=institution_id,
                                                       **SETTINGS_DEFAULTS)
                    .on_conflict_do_nothing(index_elements=[InstitutionSettings.institution_id]))
    has_codes = session.execute(select(ResultCode.id).where(
        ResultCode.institution_id == institution_id).limit(1)).first()
    if not has_codes:
        session.execute(insert(ResultCode).values([
            {"institution_id": institution_id, "code": code, "label": label,
             "contact_made": contact, "needs_promise": promise, "invalidates_phone": invalid,
             "schedules_callback": callback, "sort_order": n}
            for n, (code, label, contact, promise, invalid, callback) in enumerate(DEFAULT_CODES)
        ]).on_conflict_do_nothing())


def settings_of(session: Session, institution_id: int) -> InstitutionSettings:
    """The institution's settings, its catalogue made first if it has none yet (settings
    and codes are created together): one primary-key read on every logging after that."""
    settings = session.get(InstitutionSettings, institution_id)
    if settings is None:
        ensure_catalogue(session, institution_id)
        settings = session.get(InstitutionSettings, institution_id)
    return settings


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def local_day(moment: datetime, time_zone: str | None) -> date:
    """The calendar day ``moment`` falls on in ``time_zone`` (rollups count by it)."""
    return moment.astimezone(zone(time_zone)).date()


def today_in(time_zone: str | None, now: datetime | None = None) -> date:
    return local_day(now or datetime.now(timezone.utc), time_zone)
