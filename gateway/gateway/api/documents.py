"""API of the debtors' document folders and their share links.

The bytes never pass through here: ``POST /documents/uploads`` answers a presigned POST
(the file goes straight to the object store), ``…/complete`` asks the documents service
to verify what arrived, and downloads answer a presigned URL of a few minutes. Bodies
and query strings are validated with the service's own schemas; the service validates
again, enforces permissions and scope (a document outside the caller's reach answers
404, like a missing one) and dumps its answers, which these views only document.
"""
from __future__ import annotations

from flask import request, url_for
from marshmallow import fields

from documents.contracts import (AccessOut, DocumentOut, DownloadOut, FolderQuery, LinkCreated,
                                 LinkOut, LinkQuery, LinkWrite, UploadRequest, UploadTicket)
from recaudo_common.validation import PageQuery, page_schema

from .. import auth
from ..rpc import rpc
from ._views import Blueprint, body, query_args

blp = Blueprint("documents", __name__, url_prefix="/api/v1",
                description="Documentos: el expediente de cada deudor en el almacén de objetos "
                            "(cargas y descargas directas, versiones) y las ligas para compartirlos")
blp.before_request(auth.require_api_user)

DocumentPage = page_schema(DocumentOut, "DocumentPage")
LinkPage = page_schema(LinkOut, "LinkPage")
AccessPage = page_schema(AccessOut, "AccessPage")


class SharedLink(LinkOut):
    documents = fields.List(fields.Nested(DocumentOut))


SharedPage = page_schema(SharedLink, "SharedPage")


class LinkWithUrl(LinkCreated):
    url = fields.String(metadata={"description": "la dirección que se envía a quien la recibe"})


def share_url(token: str) -> str:
    return url_for("share.open_link", token=token, _external=True)


@blp.route("/documents/uploads", methods=["POST"])
@blp.arguments(UploadRequest)
@blp.alt_response(201, schema=UploadTicket)
def request_upload(_):
    """Pide permiso para subir un archivo al expediente del deudor: responde una política
    de POST firmada (``url`` y ``fields``). Envíe el archivo ahí como formulario multipart
    (los campos y al final ``file``) y luego llame a ``…/complete``."""
    with rpc() as proxy:
        return proxy.documents.request_upload(body()), 201


@blp.route("/documents/uploads/<upload_id>/complete", methods=["POST"])
@blp.alt_response(201, schema=DocumentOut)
def complete_upload(upload_id):
    """Verifica lo que llegó (tamaño, MD5 si lo declaró, tipo real por su contenido) y lo
    guarda como versión nueva del documento de ese nombre; si no pasa, lo borra (422)."""
    with rpc() as proxy:
        return proxy.documents.complete_upload(upload_id), 201


@blp.route("/debtors/<int:debtor_id>/documents", methods=["GET"])
@blp.arguments(FolderQuery, location="query")
@blp.alt_response(200, schema=DocumentPage)
def folder(_, debtor_id):
    """El expediente del deudor: sus documentos con sus versiones (la más reciente primero)."""
    with rpc() as proxy:
        return proxy.documents.folder(debtor_id, query_args(FolderQuery))


@blp.route("/documents/<int:document_id>", methods=["GET"])
@blp.alt_response(200, schema=DocumentOut)
def get_document(document_id):
    with rpc() as proxy:
        return proxy.documents.get_document(document_id)


@blp.route("/documents/versions/<int:version_id>/download", methods=["GET"])
@blp.alt_response(200, schema=DownloadOut)
def download(version_id):
    """Una dirección de descarga válida unos minutos, con el nombre original del archivo
    (``inline=1``: para verlo en el navegador, si es PDF o imagen)."""
    with rpc() as proxy:
        return proxy.documents.download_url(version_id, request.args.get("inline") == "1")


@blp.route("/share-links", methods=["POST"])
@blp.arguments(LinkWrite)
@blp.alt_response(201, schema=LinkWithUrl)
def create_share_link(_):
    """Comparte un documento (``document_id``) o todo el expediente del deudor hasta una
    fecha, con contraseña opcional. El token se muestra sólo esta vez."""
    with rpc() as proxy:
        link = proxy.documents.create_share_link(body())
    return {**link, "url": share_url(link["token"])}, 201


@blp.route("/share-links", methods=["GET"])
@blp.arguments(LinkQuery, location="query")
@blp.alt_response(200, schema=LinkPage)
def list_share_links(_):
    """Las ligas de sus instituciones (``state=all`` incluye vencidas y revocadas)."""
    with rpc() as proxy:
        return proxy.documents.list_share_links(query_args(LinkQuery))


@blp.route("/share-links/<int:link_id>/revoke", methods=["POST"])
@blp.alt_response(200, schema=LinkOut)
def revoke_share_link(link_id):
    with rpc() as proxy:
        return proxy.documents.revoke_share_link(link_id)


@blp.route("/share-links/<int:link_id>/accesses", methods=["GET"])
@blp.arguments(PageQuery, location="query")
@blp.alt_response(200, schema=AccessPage)
def share_link_accesses(_, link_id):
    """Bitácora de la liga: cada intento de uso, permitido o no (cuándo, desde dónde, qué)."""
    with rpc() as proxy:
        return proxy.documents.share_link_accesses(link_id, query_args(PageQuery))


@blp.route("/shared-documents", methods=["GET"])
@blp.arguments(LinkQuery, location="query")
@blp.alt_response(200, schema=SharedPage)
def shared_documents(_):
    """Para el portal del acreedor: los documentos compartidos vigentes de su institución."""
    with rpc() as proxy:
        return proxy.documents.shared_documents(query_args(LinkQuery))
