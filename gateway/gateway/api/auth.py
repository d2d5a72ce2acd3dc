"""API authentication: tokens for the mobile app, refresh with rotation, logout, me."""
from __future__ import annotations

from flask import g, request
from marshmallow import fields

from auth.contracts import Credentials, MyAccountUpdate, PasswordChange, UserOut
from recaudo_common.validation import Schema

from .. import auth
from ..rpc import rpc
from ._views import Blueprint

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth",
                description="Autenticación de la app móvil y de socios")


class TokenPair(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Integer(required=True, metadata={"description": "segundos"})


class RefreshRequest(Schema):
    refresh_token = fields.String(required=True)


@blp.route("/token", methods=["POST"])
@blp.doc(security=[])    # public: no token
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(429, response="TOO_MANY_REQUESTS")
@blp.arguments(Credentials)
@blp.alt_response(200, schema=TokenPair)
def token(credentials):
    """Cambia usuario y contraseña por un token de acceso (15 min) y uno de renovación."""
    with auth.anonymous_rpc() as proxy:
        return proxy.auth.issue_tokens(credentials["username"], credentials["password"],
                                       auth.client_address())


@blp.route("/refresh", methods=["POST"])
@blp.doc(security=[])    # public: no token
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.arguments(RefreshRequest)
@blp.alt_response(200, schema=TokenPair)
def refresh(body):
    """Rota el token de renovación: el anterior deja de servir (reusarlo revoca la familia)."""
    with auth.anonymous_rpc() as proxy:
        return proxy.auth.refresh_tokens(body["refresh_token"], auth.client_address())


@blp.route("/logout", methods=["POST"])
@auth.api_auth_required
@blp.alt_response(204, description="Sin contenido")
def logout():
    """Revoca el token de acceso presentado y su token de renovación."""
    if g.auth_kind == "token" and not g.bearer_token.startswith("rk_"):
        with auth.anonymous_rpc() as proxy:
            proxy.auth.revoke_token(g.bearer_token)
    elif g.auth_kind == "session":
        with auth.anonymous_rpc() as proxy:
            proxy.auth.logout(g.session_id)
    auth.forget_current()
    return "", 204


@blp.route("/me", methods=["GET"])
@auth.api_auth_required
@blp.alt_response(200, schema=UserOut)
def me():
    """El usuario autenticado."""
    with rpc() as proxy:
        return proxy.auth.me()


@blp.route("/me", methods=["PATCH"])
@auth.api_auth_required
@blp.arguments(MyAccountUpdate)
@blp.alt_response(200, schema=UserOut)
def update_me(_):
    """Cambia el nombre, el idioma preferido o la zona horaria (vacía: la de su institución)."""
    with rpc() as proxy:
        return proxy.auth.update_me(request.get_json())


@blp.route("/password", methods=["POST"])
@auth.api_auth_required
@blp.arguments(PasswordChange)
@blp.alt_response(204, description="Sin contenido")
def change_password(_):
    """Cambia la contraseña propia (requiere la actual)."""
    with rpc() as proxy:
        proxy.auth.change_password(request.get_json(), keep=auth.current_credential())
    return "", 204
