"""Validation messages in the reader's language, translated once at the gateway's edge.

Problems come from two places: marshmallow's own messages (English: "Not a valid
integer.", from the gateway's schemas and the services' alike) and the services' and the
boundary's own (Spanish, the catalogue's msgids). ``localize`` turns either into the
request's language through the one babel catalogue: marshmallow's are first mapped to
their Spanish msgid (with their numbers and choices carried over), then every message
is looked up; one the catalogue does not know is shown as it came. ``errors.error_body``
applies it to every error the API answers; the UI's forms use it too.
"""
from __future__ import annotations

import re

from flask_babel import gettext as _


def N_(message: str) -> str:
    """Marks a message for extraction; translated by ``_()`` when shown."""
    return message


#: marshmallow's fixed messages -> their Spanish msgid
MARSHMALLOW = {
    "Missing data for required field.": N_("Falta este dato."),
    "Field may not be null.": N_("Falta este dato."),
    "Invalid value.": N_("Valor inválido."),
    "Not a valid string.": N_("Debe ser un texto."),
    "Not a valid utf-8 string.": N_("Debe ser un texto."),
    "Not a valid integer.": N_("Debe ser un número entero."),
    "Not a valid number.": N_("Debe ser un importe."),
    "Number too large.": N_("Número demasiado grande."),
    "Special numeric values (nan or infinity) are not permitted.":
        N_("Debe ser un número finito."),
    "Not a valid boolean.": N_("Debe ser verdadero o falso."),
    "Not a valid date.": N_("Fecha inválida."),
    "Not a valid datetime.": N_("Fecha y hora inválidas."),
    "Not a valid aware datetime.": N_("Fecha y hora inválidas: indique la zona (p. ej. -06:00)."),
    "Not a valid time.": N_("Hora inválida."),
    "Not a valid list.": N_("Debe ser una lista."),
    "Invalid type.": N_("Debe ser un objeto."),
    "Invalid input type.": N_("Debe ser un objeto."),
    "Not a valid mapping type.": N_("Debe ser un objeto."),
    "Not a valid email address.": N_("Correo electrónico inválido."),
    "Not a valid UUID.": N_("Identificador inválido."),
    "Not a valid URL.": N_("Dirección (URL) inválida."),
    "String does not match expected pattern.": N_("El formato no es válido."),
    "Invalid input.": N_("Valor inválido."),
    "Unknown field.": N_("Campo desconocido."),
}

#: marshmallow's messages with values in them -> their Spanish msgid (same names)
PATTERNS = [(re.compile(pattern), spanish) for pattern, spanish in (
    (r"^Length must be between (?P<min>\d+) and (?P<max>\d+)\.$",
     N_("Debe tener entre %(min)s y %(max)s elementos o caracteres.")),
    (r"^Length must be (?P<equal>\d+)\.$",
     N_("Debe tener %(equal)s elementos o caracteres.")),
    (r"^Longer than maximum length (?P<max>\d+)\.$", N_("Use a lo más %(max)s caracteres.")),
    (r"^Shorter than minimum length 1\.$", N_("No puede quedar vacío.")),
    (r"^Shorter than minimum length (?P<min>\d+)\.$", N_("Use al menos %(min)s caracteres.")),
    (r"^Must be greater than or equal to (?P<min>\S+) and less than or equal to (?P<max>\S+)\.$",
     N_("Debe estar entre %(min)s y %(max)s.")),
    (r"^Must be greater than or equal to (?P<min>\S+)\.$", N_("Debe ser al menos %(min)s.")),
    (r"^Must be less than or equal to (?P<max>\S+)\.$", N_("Debe ser a lo más %(max)s.")),
    (r"^Must be greater than (?P<min>\S+)\.$", N_("Debe ser mayor que %(min)s.")),
    (r"^Must be less than (?P<max>\S+)\.$", N_("Debe ser menor que %(max)s.")),
    (r"^Must be one of: (?P<choices>.*)\.$", N_("Debe ser uno de: %(choices)s.")),
    (r"^One or more of the choices you made was not in: (?P<choices>.*)\.$",
     N_("Sólo se admiten: %(choices)s.")),
    (r"^Not a valid (?P<what>[\w ]+)\.$", N_("Valor inválido.")),
)]


def spanish(message: str) -> tuple[str, dict]:
    """marshmallow's ``message`` as the Spanish msgid and its values; any other as is."""
    if message in MARSHMALLOW:
        return MARSHMALLOW[message], {}
    for pattern, msgid in PATTERNS:
        found = pattern.match(message)
        if found:
            return msgid, found.groupdict()
    return message, {}


def localize(message) -> str:
    """One problem in the request's language (Spanish unless the reader asked otherwise)."""
    text = str(message)
    msgid, values = spanish(text)
    return _(msgid, **values) if values else _(msgid)


def localize_fields(problems):
    """``{"field": ["message", ...], "nested": {"0": {...}}}`` with every message localized."""
    if isinstance(problems, dict):
        return {key: localize_fields(value) for key, value in problems.items()}
    if isinstance(problems, (list, tuple)):
        return [localize_fields(value) for value in problems]
    return localize(problems)
