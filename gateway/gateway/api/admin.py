"""API of the security module: users, profiles, permissions, teams, API keys, audit.

Bodies are validated here for a quick answer and documented from the auth
service's own schemas; the auth service validates again and enforces permission
and reach (the gateway is never the only guard).
"""
from __future__ import annotations

from marshmallow import fields

from auth.contracts import (ApiKeyCreate, ApiKeyOut, AuditOut, AuditQuery, PasswordReset,
                            ProfileCreate, ProfileOut, ProfileUpdate, TeamOut, TeamWrite,
                            UserCreate, UserOut, UserQuery, UserUpdate)
from recaudo_common.validation import Schema

from .. import auth
from ..rpc import rpc
from ._views import Blueprint, body, query_args

blp = Blueprint("admin", __name__, url_prefix="/api/v1",
                description="Usuarios, perfiles, equipos, llaves de API y bitácora de seguridad")
blp.before_request(auth.require_api_user)


def _page_of(item_schema):
    return type(f"{item_schema.__name__}Page", (Schema,), {
        "items": fields.List(fields.Nested(item_schema)), "total": fields.Integer(),
        "page": fields.Integer(), "per_page": fields.Integer(), "pages": fields.Integer()})


class Permission(Schema):
    code = fields.String()
    es = fields.String()
    en = fields.String()


class ApiKeyCreated(ApiKeyOut):
    key = fields.String(metadata={"description": "La llave; se muestra sólo esta vez"})



@blp.route("/permissions", methods=["GET"])
@blp.alt_response(200, schema=Permission(many=True))
def permissions():
    """El catálogo de permisos con que se arman los perfiles."""
    with rpc() as proxy:
        return proxy.auth.list_permissions()


@blp.route("/users", methods=["GET"])
@blp.arguments(UserQuery, location="query")
@blp.alt_response(200, schema=_page_of(UserOut))
def list_users(_):
    """Usuarios a su alcance; búsqueda, filtro por perfil y estado, orden y paginación."""
    with rpc() as proxy:
        return proxy.auth.list_users(query_args(UserQuery))


@blp.route("/users", methods=["POST"])
@blp.arguments(UserCreate)
@blp.alt_response(201, schema=UserOut)
def create_user(_):
    """Crea un usuario con perfil e instituciones (nunca más permisos que los propios)."""
    with rpc() as proxy:
        return proxy.auth.create_user(body()), 201


@blp.route("/users/<int:user_id>", methods=["GET"])
@blp.alt_response(200, schema=UserOut)
def get_user(user_id):
    with rpc() as proxy:
        return proxy.auth.get_user(user_id)


@blp.route("/users/<int:user_id>", methods=["PATCH"])
@blp.arguments(UserUpdate)
@blp.alt_response(200, schema=UserOut)
def update_user(_, user_id):
    with rpc() as proxy:
        return proxy.auth.update_user(user_id, body())


@blp.route("/users/<int:user_id>/disable", methods=["POST"])
@blp.alt_response(200, schema=UserOut)
def disable_user(user_id):
    """Desactiva al usuario y termina de inmediato sus sesiones y tokens."""
    with rpc() as proxy:
        return proxy.auth.disable_user(user_id)


@blp.route("/users/<int:user_id>/enable", methods=["POST"])
@blp.alt_response(200, schema=UserOut)
def enable_user(user_id):
    with rpc() as proxy:
        return proxy.auth.enable_user(user_id)


@blp.route("/users/<int:user_id>/unlock", methods=["POST"])
@blp.alt_response(200, schema=UserOut)
def unlock_user(user_id):
    """Levanta el bloqueo por intentos fallidos."""
    with rpc() as proxy:
        return proxy.auth.unlock_user(user_id)


@blp.route("/users/<int:user_id>/password", methods=["POST"])
@blp.arguments(PasswordReset)
@blp.alt_response(200, schema=UserOut)
def reset_password(_, user_id):
    """Asigna una contraseña nueva y termina las sesiones del usuario."""
    with rpc() as proxy:
        return proxy.auth.reset_password(user_id, body())


@blp.route("/profiles", methods=["GET"])
@blp.alt_response(200, schema=ProfileOut(many=True))
def list_profiles():
    with rpc() as proxy:
        return proxy.auth.list_profiles()


@blp.route("/profiles", methods=["POST"])
@blp.arguments(ProfileCreate)
@blp.alt_response(201, schema=ProfileOut)
def create_profile(_):
    with rpc() as proxy:
        return proxy.auth.create_profile(body()), 201


@blp.route("/profiles/<int:profile_id>", methods=["PUT"])
@blp.arguments(ProfileUpdate)
@blp.alt_response(200, schema=ProfileOut)
def update_profile(_, profile_id):
    """Reemplaza nombre, descripción y permisos del perfil (queda en la bitácora)."""
    with rpc() as proxy:
        return proxy.auth.update_profile(profile_id, body())


@blp.route("/teams", methods=["GET"])
@blp.alt_response(200, schema=TeamOut(many=True))
def list_teams():
    """Equipos a su alcance (un supervisor ve el suyo)."""
    with rpc() as proxy:
        return proxy.auth.list_teams()


@blp.route("/teams", methods=["POST"])
@blp.arguments(TeamWrite)
@blp.alt_response(201, schema=TeamOut)
def create_team(_):
    with rpc() as proxy:
        return proxy.auth.save_team(body()), 201


@blp.route("/teams/<int:team_id>", methods=["PUT"])
@blp.arguments(TeamWrite)
@blp.alt_response(200, schema=TeamOut)
def update_team(_, team_id):
    with rpc() as proxy:
        return proxy.auth.save_team(body(), team_id)


@blp.route("/api-keys", methods=["GET"])
@blp.alt_response(200, schema=ApiKeyOut(many=True))
def list_api_keys():
    with rpc() as proxy:
        return proxy.auth.list_api_keys()


@blp.route("/api-keys", methods=["POST"])
@blp.arguments(ApiKeyCreate)
@blp.alt_response(201, schema=ApiKeyCreated)
def create_api_key(_):
    """Crea una llave para un usuario de integración; la respuesta la muestra una sola vez."""
    with rpc() as proxy:
        return proxy.auth.create_api_key(body()), 201


@blp.route("/api-keys/<int:key_id>", methods=["DELETE"])
@blp.alt_response(200, schema=ApiKeyOut)
def revoke_api_key(key_id):
    with rpc() as proxy:
        return proxy.auth.revoke_api_key(key_id)


@blp.route("/audit", methods=["GET"])
@blp.arguments(AuditQuery, location="query")
@blp.alt_response(200, schema=_page_of(AuditOut))
def list_audit(_):
    """Bitácora de seguridad con filtros por acción, usuario y fechas."""
    with rpc() as proxy:
        return proxy.auth.list_audit(query_args(AuditQuery))
