"""Messaging's entries in the contact log (the activities service's): an email, fax, letter
or SMS sent or received is logged with messaging's own result codes, which are added to the
institution's catalogue the first time they are needed there."""
from __future__ import annotations

from recaudo_common.errors import Conflict, InvalidInput

from .mailsync import INBOUND_CODE

#: the result codes messaging logs with, added to an institution's catalogue when missing
RESULT_CODES = {
    INBOUND_CODE: ("Correo recibido del deudor", True),
    "CORREO_ENV": ("Correo enviado", False),
    "FAX_ENV": ("Fax enviado", False),
    "CARTA_ENV": ("Carta enviada", False),
    "SMS_ENV": ("SMS enviado", False),
    "SMS_REC": ("SMS recibido del deudor", True),
}
#: the result code of each outbound channel's activity
SENT_CODES = {"email": "CORREO_ENV", "fax": "FAX_ENV", "letter": "CARTA_ENV"}

#: institutions whose catalogue has messaging's codes (checked once per process)
_codes_ready: set[int] = set()


def ensure_codes(acting, institution_id: int) -> None:
    """Messaging's result codes in the institution's catalogue (added once if missing), as
    the platform (``acting.system``)."""
    if institution_id in _codes_ready:
        return
    have = {c["code"] for c in acting.system.activities.list_result_codes(institution_id, True)}
    for code, (label, contact) in RESULT_CODES.items():
        if code not in have:
            try:
                acting.system.activities.save_result_code({
                    "institution_id": institution_id, "code": code, "label": label,
                    "contact_made": contact, "sort_order": 900})
            except Conflict:
                pass  # another worker added it first: what matters is that it exists
    _codes_ready.add(institution_id)


def log_activity(acting, activities, body: dict, institution_id: int) -> dict:
    """Log through ``activities`` (the caller's proxy or the platform's) with messaging's
    result codes in place; a catalogue emptied behind our back is refilled once."""
    ensure_codes(acting, institution_id)
    try:
        return activities.log_activity(body)
    except InvalidInput as exc:
        if "result_code" not in (exc.fields or {}):
            raise
        _codes_ready.discard(institution_id)
        ensure_codes(acting, institution_id)
        return activities.log_activity(body)
