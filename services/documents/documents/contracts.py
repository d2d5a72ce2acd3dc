"""marshmallow schemas of the documents service's RPC inputs and outputs.

A file name is the user's own text shown back to them and put in a download's
``Content-Disposition``: it may not carry a path (``/`` or ``\\``), control characters,
or be ``.``/``..``; the object key never comes from it.
"""
from __future__ import annotations

import re
import unicodedata

from marshmallow import ValidationError, fields, post_load, validate

from recaudo_common.validation import PageQuery, Schema

#: a document's kind (the models' check constraint lists the same)
CATEGORIES = ("contrato", "identificacion", "comprobante_pago", "demanda", "carta", "otro")

#: the largest document accepted (a scanned court filing fits; a video does not)
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MAX_NAME = 255
#: how far ahead a share link may expire
MAX_LINK_DAYS = 90
MIN_LINK_PASSWORD = 6

_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def _check_name(value: str) -> None:
    if any(sep in value for sep in "/\\"):
        raise ValidationError("El nombre no puede llevar rutas (/ o \\)")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise ValidationError("El nombre tiene caracteres de control")
    if value.strip(" .") == "":
        raise ValidationError("Nombre de archivo inválido")


def _id(**kwargs):
    return fields.Integer(strict=True, validate=validate.Range(min=1), **kwargs)


class UploadRequest(Schema):
    debtor_id = _id(required=True)
    account_id = _id(load_default=None)
    activity_id = _id(load_default=None)
    dispute_id = _id(load_default=None)
    category = fields.String(load_default="otro", validate=validate.OneOf(CATEGORIES))
    filename = fields.String(required=True, validate=[validate.Length(min=1, max=MAX_NAME),
                                                      _check_name])
    size = fields.Integer(strict=True, required=True, validate=validate.Range(
        min=1, max=MAX_DOCUMENT_BYTES,
        error=f"El archivo debe pesar entre 1 byte y {MAX_DOCUMENT_BYTES // (1024 * 1024)} MB"))
    md5 = fields.String(load_default=None, validate=validate.Regexp(
        _MD5, error="Se esperaba el MD5 en hexadecimal (32 caracteres)"))

    @post_load
    def _tidy(self, data, **_):
        data["filename"] = unicodedata.normalize("NFC", data["filename"].strip())
        if data["md5"]:
            data["md5"] = data["md5"].lower()
        if data["dispute_id"] and not data["account_id"]:
            raise ValidationError("Indique la cuenta de la aclaración", "account_id")
        return data


class FolderQuery(PageQuery):
    category = fields.String(load_default=None, validate=validate.OneOf(CATEGORIES))
    q = fields.String(load_default=None, validate=validate.Length(max=100))
    account_id = _id(load_default=None)
    activity_id = _id(load_default=None)
    dispute_id = _id(load_default=None)
    sort = fields.String(load_default="-updated_at", validate=validate.OneOf(
        ["name", "-name", "updated_at", "-updated_at", "category", "-category"]))


class VersionOut(Schema):
    id = fields.Integer()
    document_id = fields.Integer()
    version = fields.Integer()
    name = fields.String()
    content_type = fields.String()
    size = fields.Integer()
    checksum = fields.String(metadata={"description": "MD5 en hexadecimal"})
    uploaded_by = fields.Integer()
    uploaded_at = fields.DateTime()
    previewable = fields.Boolean()


class DocumentOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    debtor_id = fields.Integer()
    account_id = fields.Integer(allow_none=True)
    activity_id = fields.Integer(allow_none=True)
    dispute_id = fields.Integer(allow_none=True)
    category = fields.String()
    name = fields.String()
    latest_version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    latest = fields.Nested(VersionOut)
    versions = fields.List(fields.Nested(VersionOut))


class UploadTicket(Schema):
    upload_id = fields.UUID()
    url = fields.String(metadata={"description": "POST multipart aquí: los campos y al final `file`"})
    fields_ = fields.Dict(data_key="fields", attribute="fields")
    max_bytes = fields.Integer()
    expires_at = fields.DateTime()


class DownloadOut(Schema):
    url = fields.String()
    expires_at = fields.DateTime()
    name = fields.String()
    content_type = fields.String()


class LinkWrite(Schema):
    debtor_id = _id(required=True)
    document_id = _id(load_default=None)
    expires_at = fields.AwareDateTime(required=True)
    password = fields.String(load_default=None, validate=validate.Length(
        min=MIN_LINK_PASSWORD, max=200,
        error=f"La contraseña debe tener al menos {MIN_LINK_PASSWORD} caracteres"))
    label = fields.String(load_default=None, validate=validate.Length(max=200))


class LinkQuery(PageQuery):
    debtor_id = _id(load_default=None)
    institution_id = _id(load_default=None)
    state = fields.String(load_default="active", validate=validate.OneOf(["active", "all"]))


class LinkOut(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    debtor_id = fields.Integer()
    document_id = fields.Integer(allow_none=True)
    document_name = fields.String(allow_none=True)
    label = fields.String(allow_none=True)
    has_password = fields.Boolean()
    expires_at = fields.DateTime()
    created_by = fields.Integer()
    created_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)
    state = fields.String(metadata={"description": "active, expired o revoked"})
    accesses = fields.Integer()
    last_access_at = fields.DateTime(allow_none=True)


class LinkCreated(LinkOut):
    token = fields.String(metadata={"description": "se muestra una sola vez"})


class AccessOut(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    address = fields.String(allow_none=True)
    version_id = fields.Integer(allow_none=True)
    outcome = fields.String()


class ResolveRequest(Schema):
    """What the gateway passes on from whoever holds a link."""

    token = fields.String(required=True, validate=validate.Length(min=10, max=200))
    password = fields.String(load_default=None, validate=validate.Length(max=200))
    grant = fields.String(load_default=None, validate=validate.Length(max=500))
    version_id = _id(load_default=None)
    address = fields.String(load_default=None, validate=validate.Length(max=64))


class LinkView(Schema):
    """What a link's holder sees: its documents, or the download they asked for."""

    label = fields.String(allow_none=True)
    expires_at = fields.DateTime()
    has_password = fields.Boolean()
    grant = fields.String(allow_none=True, metadata={
        "description": "tras la contraseña correcta: evita pedirla de nuevo por 30 minutos"})
    documents = fields.List(fields.Nested(DocumentOut))
    download = fields.Nested(DownloadOut)
