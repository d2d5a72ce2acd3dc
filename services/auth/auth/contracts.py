"""marshmallow schemas of the auth service's RPC inputs and outputs."""
from __future__ import annotations

from zoneinfo import available_timezones

from marshmallow import ValidationError, fields, validate, validates

from recaudo_common.validation import PageQuery, Schema

#: code -> (Spanish label, English label)
PERMISSIONS: dict[str, tuple[str, str]] = {
    "portfolio.read": ("Consultar cartera (cuentas asignadas)", "Read portfolio (assigned accounts)"),
    "portfolio.read_all": ("Consultar toda la cartera de sus instituciones", "Read the whole portfolio of their institutions"),
    "portfolio.write": ("Editar deudores y cuentas", "Edit debtors and accounts"),
    "portfolio.import": ("Importar archivos de cartera y pagos", "Import portfolio and payment files"),
    "institutions.manage": ("Administrar instituciones y catálogos", "Manage institutions and catalogues"),
    "queues.work": ("Trabajar filas de cobranza", "Work collection queues"),
    "queues.manage": ("Administrar estrategias y filas", "Manage strategies and queues"),
    "activities.read": ("Consultar gestiones", "Read activities"),
    "activities.log": ("Registrar gestiones y promesas", "Log activities and promises"),
    "activities.manage": ("Administrar códigos de resultado", "Manage result codes"),
    "disputes.manage": ("Gestionar aclaraciones", "Manage disputes"),
    "promises.approve": ("Aprobar promesas, planes y convenios fuera de los límites",
                         "Approve promises, plans and settlements outside the limits"),
    "documents.read": ("Consultar documentos", "Read documents"),
    "documents.upload": ("Subir documentos", "Upload documents"),
    "documents.share": ("Compartir documentos por liga", "Share documents by link"),
    "messaging.send": ("Enviar correo y fax", "Send email and fax"),
    "messaging.manage": ("Administrar buzones y plantillas", "Manage mailboxes and templates"),
    "reports.view": ("Ver reportes", "View reports"),
    "users.manage": ("Administrar usuarios, perfiles, equipos y llaves de API", "Manage users, profiles, teams and API keys"),
    "compliance.manage": ("Editar políticas de contacto y consultar la bitácora de cumplimiento",
                          "Edit contact policies and read the compliance log"),
    "webhooks.manage": ("Suscribir webhooks de eventos de su institución",
                        "Subscribe webhooks to their institution's events"),
    "audit.view": ("Consultar la bitácora de seguridad", "View the security audit log"),
}

#: what the security audit records
ACTIONS = (
    "login_succeeded", "login_failed", "login_throttled", "account_locked", "account_unlocked",
    "logout", "session_expired", "token_issued", "token_refreshed", "token_reuse_detected",
    "password_changed", "password_reset", "user_created", "user_updated", "user_disabled",
    "user_enabled", "profile_created", "permissions_changed", "team_changed",
    "api_key_created", "api_key_revoked",
    # the debtor portal (portal.py)
    "portal_settings_changed", "portal_link_created", "portal_link_refused",
    "portal_factor_failed", "portal_link_locked", "portal_session_opened",
    "portal_session_expired", "portal_logout",
)

USERNAME = validate.Regexp(r"^[a-z0-9][a-z0-9._-]{2,59}$",
                           error="3 a 60 caracteres: minúsculas, dígitos, punto, guion")
LANGUAGES = validate.OneOf(["es", "en"])
ZONES = frozenset(available_timezones())


class _TimeZone(fields.String):
    """An IANA zone name ("America/Mexico_City"); empty or null: the institution's zone."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs).strip()
        if not value:
            return None
        if value not in ZONES:
            raise ValidationError("Zona horaria desconocida")
        return value


def _time_zone(**kwargs) -> fields.Field:
    return _TimeZone(allow_none=True, **kwargs)
#: user ids named in one ``user_names`` call (the gateway asks in batches of this size)
MAX_NAMES = 500


class Credentials(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=60))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class UserCreate(Schema):
    username = fields.String(required=True, validate=USERNAME)
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    email = fields.Email(load_default=None, allow_none=True)
    profile_id = fields.Integer(required=True)
    language = fields.String(load_default="es", validate=LANGUAGES)
    time_zone = _time_zone(load_default=None)
    active = fields.Boolean(load_default=True)
    all_institutions = fields.Boolean(load_default=False)
    institutions = fields.List(fields.Integer(validate=validate.Range(min=1)),
                               load_default=list, validate=validate.Length(max=500))
    password = fields.String(required=True, validate=validate.Length(max=256))


class UserUpdate(Schema):
    display_name = fields.String(validate=validate.Length(min=1, max=120))
    email = fields.Email(allow_none=True)
    profile_id = fields.Integer()
    language = fields.String(validate=LANGUAGES)
    time_zone = _time_zone()
    all_institutions = fields.Boolean()
    institutions = fields.List(fields.Integer(validate=validate.Range(min=1)),
                               validate=validate.Length(max=500))


class UserQuery(PageQuery):
    search = fields.String(load_default=None, validate=validate.Length(max=100))
    profile_id = fields.Integer(load_default=None)
    active = fields.Boolean(load_default=None)
    sort = fields.String(load_default="username", validate=validate.OneOf(
        ["username", "-username", "display_name", "-display_name", "last_login_at",
         "-last_login_at", "created_at", "-created_at"]))


class MyAccountUpdate(Schema):
    display_name = fields.String(validate=validate.Length(min=1, max=120))
    language = fields.String(validate=LANGUAGES)
    time_zone = _time_zone()


class PasswordChange(Schema):
    current_password = fields.String(required=True, validate=validate.Length(max=256))
    new_password = fields.String(required=True, validate=validate.Length(max=256))


class PasswordReset(Schema):
    password = fields.String(required=True, validate=validate.Length(max=256))


class ProfileCreate(Schema):
    name = fields.String(required=True, validate=validate.Length(min=2, max=60))
    description = fields.String(load_default="", validate=validate.Length(max=500))
    permissions = fields.List(fields.String(), required=True)
    single_institution = fields.Boolean(load_default=False)

    @validates("permissions")
    def _known(self, value, **_):
        unknown = sorted(set(value) - set(PERMISSIONS))
        if unknown:
            raise ValidationError(f"Permisos desconocidos: {', '.join(unknown)}")


class ProfileUpdate(ProfileCreate):
    pass


class TeamWrite(Schema):
    name = fields.String(required=True, validate=validate.Length(min=2, max=80))
    supervisor_id = fields.Integer(required=True)
    members = fields.List(fields.Integer(), load_default=list, validate=validate.Length(max=500))


class ApiKeyCreate(Schema):
    user_id = fields.Integer(required=True)
    name = fields.String(required=True, validate=validate.Length(min=2, max=80))
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True)


class AuditQuery(PageQuery):
    action = fields.String(load_default=None, validate=validate.OneOf(ACTIONS))
    username = fields.String(load_default=None, validate=validate.Length(max=60))
    since = fields.AwareDateTime(load_default=None)
    until = fields.AwareDateTime(load_default=None)


# --- outputs ----------------------------------------------------------------------

class ProfileOut(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    permissions = fields.List(fields.String())
    single_institution = fields.Boolean()


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    email = fields.String(allow_none=True)
    active = fields.Boolean()
    language = fields.String()
    time_zone = fields.String(allow_none=True)
    profile_id = fields.Integer()
    profile = fields.Function(lambda user: user.profile.name)
    all_institutions = fields.Boolean()
    institutions = fields.List(fields.Integer())
    locked = fields.Function(lambda user: user.locked_at is not None)
    #: seconds some address must still wait to try this account's password (lists and
    #: single users; 0 elsewhere)
    login_wait = fields.Integer(dump_default=0)
    last_login_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()


class TeamOut(Schema):
    id = fields.Integer()
    name = fields.String()
    supervisor_id = fields.Integer()
    supervisor = fields.String()
    members = fields.List(fields.Dict())


class ApiKeyOut(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    user_id = fields.Integer()
    created_by = fields.Integer()
    created_at = fields.AwareDateTime()
    expires_at = fields.AwareDateTime(allow_none=True)
    last_used_at = fields.AwareDateTime(allow_none=True)
    revoked = fields.Function(lambda key: key.revoked_at is not None)


class AuditOut(Schema):
    id = fields.Integer()
    at = fields.AwareDateTime()
    action = fields.String()
    actor_id = fields.Integer(allow_none=True)
    actor = fields.String(allow_none=True)
    target_user_id = fields.Integer(allow_none=True)
    address = fields.Function(lambda e: str(e.address) if e.address else None)
    details = fields.Dict()
