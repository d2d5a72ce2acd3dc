"""Entrypoints of the documents service.

Debtors and accounts belong to the portfolio service: whether the caller may see a
debtor (and which of its accounts) is asked there by RPC carrying the caller's own
identity, so the same scope applies here (a collector sees only the folders of debtors
whose accounts are theirs). A document's institution is checked against the caller's
here, on this service's own rows, before anything else.
"""
from __future__ import annotations

import logging
import uuid

from nameko.rpc import RpcProxy
from nameko.timer import timer
from sqlalchemy import delete

from recaudo_common import storage
from recaudo_common.db import Database
from recaudo_common.errors import InvalidInput, NotFound, PermissionDenied
from recaudo_common.service import ServiceBase, rpc
from recaudo_common.validation import PageQuery, load

from . import folders, sharing
from .models import Base, Document, ShareLink, Upload
from .contracts import (DownloadOut, FolderQuery, LinkQuery, LinkWrite,
                        ResolveRequest, UploadRequest, UploadTicket)
from .portal_rpc import PortalEntrypoints

logger = logging.getLogger(__name__)


def _id(value, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput("Identificador inválido", {field: ["Se esperaba un número"]})
    return value


class DocumentsService(PortalEntrypoints, ServiceBase):
    name = "documents"
    db = Database(Base)
    portfolio = RpcProxy("portfolio")
    activities = RpcProxy("activities")

    def extra_health(self) -> dict:
        storage.client().bucket_exists(storage.bucket())
        return {"object_store": "ok"}

    # --- scope -----------------------------------------------------------------------------

    def _debtor(self, debtor_id) -> dict:
        """The debtor as the caller may see it (institution, name, visible accounts)."""
        return self.portfolio.debtor_scope(_id(debtor_id, "debtor_id"))

    def _check_document(self, identity, document: Document | None) -> Document:
        """NotFound unless the caller may see the document's debtor."""
        if document is None or not identity.may_access_institution(document.institution_id):
            raise NotFound("Documento no encontrado")
        if not identity.has("portfolio.read_all"):
            self._debtor(document.debtor_id)  # a collector: only their debtors' folders
        return document

    def _check_links(self, identity, debtor: dict, data: dict) -> None:
        """An activity or dispute a document is attached to must be of the debtor's accounts."""
        if data["activity_id"] is not None:
            try:
                activity = self.activities.get_activity(data["activity_id"])
            except NotFound:
                activity = None
            if activity is None or activity["account_id"] not in debtor["account_ids"]:
                raise InvalidInput("Datos inválidos",
                                   {"activity_id": ["La gestión no es de este deudor"]})
        if data["dispute_id"] is not None:
            disputes = self.activities.account_disputes(data["account_id"])
            if data["dispute_id"] not in {d["id"] for d in disputes}:
                raise InvalidInput("Datos inválidos",
                                   {"dispute_id": ["La aclaración no es de esta cuenta"]})

    # --- uploads ---------------------------------------------------------------------------

    @rpc
    def request_upload(self, data):
        """A presigned POST for one file into the debtor's folder (the bytes go to S3)."""
        identity = self.caller.require("documents.upload")
        data = load(UploadRequest(), data)
        debtor = self._debtor(data["debtor_id"])
        self._check_links(identity, debtor, data)
        with self.db.session() as session:
            return UploadTicket().dump(folders.request_upload(session, identity, debtor, data))

    @rpc
    def complete_upload(self, upload_id):
        """Verify what arrived and make it the next version of its document; a repeated
        call answers the same version."""
        identity = self.caller.require("documents.upload")
        try:
            upload_id = uuid.UUID(str(upload_id))
        except ValueError:
            raise InvalidInput("Carga inválida", {"upload_id": ["Identificador inválido"]}) from None
        with self.db.session() as session:
            upload = session.get(Upload, upload_id)
            if upload is None:
                version = folders.version_for_upload(session, upload_id)
                if version is None or version.uploaded_by != identity.user_id:
                    raise NotFound("Carga no encontrada")
                return folders.describe(session, session.get(Document, version.document_id))
            if upload.uploaded_by != identity.user_id:
                raise NotFound("Carga no encontrada")
            session.expunge(upload)
        try:
            kind, size, checksum = folders.verify_upload(upload)
        except folders.Refusal as refusal:
            with self.db.session() as session:
                session.execute(delete(Upload).where(Upload.id == upload.id))
            raise InvalidInput("Archivo rechazado", {"file": [str(refusal)]}) from None
        with self.db.session() as session:
            stored = folders.store_version(session, upload, kind, size, checksum)
            if stored is None:  # a concurrent call stored it first, or the sweep took it
                version = folders.version_for_upload(session, upload_id)
                if version is None:
                    raise NotFound("Carga vencida: súbalo de nuevo")
                return folders.describe(session, session.get(Document, version.document_id))
            document, version = stored
            self.db.emit(session, "document_added", {
                "document_id": document.id, "version_id": version.id, "version": version.version,
                "institution_id": document.institution_id, "debtor_id": document.debtor_id,
                "account_id": document.account_id, "activity_id": document.activity_id,
                "dispute_id": document.dispute_id, "category": document.category,
                "name": version.name, "content_type": version.content_type, "size": size,
                "uploaded_by": version.uploaded_by})
            return folders.describe(session, document)

    @timer(interval=300)
    def sweep_uploads_timer(self):
        """Every five minutes: the objects of uploads never completed go."""
        swept = self._sweep()
        if swept:
            logger.info("expired uploads swept: %d", swept)

    @rpc
    def sweep_uploads(self):
        """The sweep on demand: it spans institutions, so only an administrator of them all
        (or the platform's own identity) runs it."""
        identity = self.caller.identity
        if not identity.all_institutions or not identity.has("institutions.manage"):
            raise PermissionDenied("Solo la plataforma barre las cargas vencidas")
        return {"swept": self._sweep()}

    def _sweep(self) -> int:
        total = 0
        while True:
            with self.db.session() as session:
                swept = folders.sweep_expired(session)
            total += swept
            if swept < folders.SWEEP_BATCH:
                return total

    # --- folders, documents and downloads ------------------------------------------------------

    @rpc
    def folder(self, debtor_id, query=None):
        """A page of the debtor's documents with their versions."""
        self.caller.require("documents.read")
        query = load(FolderQuery(), query or {})
        debtor = self._debtor(debtor_id)
        with self.db.session() as session:
            return folders.folder(session, debtor, query)

    @rpc
    def get_document(self, document_id):
        identity = self.caller.require("documents.read")
        with self.db.session() as session:
            document = self._check_document(identity, session.get(Document, _id(document_id, "document_id")))
            return folders.describe(session, document)

    @rpc
    def download_url(self, version_id, inline=False):
        """A presigned GET of a few minutes for one version, named as it was uploaded."""
        identity = self.caller.require("documents.read")
        with self.db.session() as session:
            document, version = folders.find_version(session, _id(version_id, "version_id"))
            self._check_document(identity, document)
            return DownloadOut().dump(folders.download(version, inline=bool(inline)))

    # --- share links -----------------------------------------------------------------------------

    @rpc
    def create_share_link(self, data):
        """A link to one document or the debtor's folder; its token is answered once."""
        identity = self.caller.require("documents.share")
        data = load(LinkWrite(), data)
        debtor = self._debtor(data["debtor_id"])
        with self.db.session() as session:
            link, token = sharing.create(session, identity, debtor, data)
            described = sharing.describe(session, [link])[0]
        return {**described, "token": token}

    @rpc
    def list_share_links(self, query=None):
        identity = self.caller.require("documents.share")
        query = load(LinkQuery(), query or {})
        with self.db.session() as session:
            return sharing.listing(session, identity, query)

    @rpc
    def shared_documents(self, query=None):
        """The portal's view: active links of the caller's institutions and what they hold."""
        identity = self.caller.require("documents.read")
        query = load(LinkQuery(), {**(query or {}), "state": "active"})
        with self.db.session() as session:
            page = sharing.listing(session, identity, query)
            for item in page["items"]:
                item["documents"] = sharing.documents_of(session, session.get(ShareLink, item["id"]))
            return page

    @rpc
    def revoke_share_link(self, link_id):
        identity = self.caller.require("documents.share")
        with self.db.session() as session:
            link = sharing.visible_link(session, identity, _id(link_id, "link_id"))
            sharing.revoke(session, identity, link)
            return sharing.describe(session, [link])[0]

    @rpc
    def share_link_accesses(self, link_id, query=None):
        """The link's access log, newest first."""
        identity = self.caller.require("documents.share")
        query = load(PageQuery(), query or {})
        with self.db.session() as session:
            link = sharing.visible_link(session, identity, _id(link_id, "link_id"))
            return sharing.accesses(session, link, query["page"], query["per_page"])

    @rpc
    def resolve_share_link(self, request):
        """Open a link for whoever holds it (no login: the token, and its password if it has
        one, are the credential). Every attempt is logged, refused ones too."""
        request = load(ResolveRequest(), request)
        with self.db.session() as session:
            link, refusal, grant = sharing.check(session, request)
            if refusal is None:
                return sharing.open_link(session, link, request, grant)
            session.add(sharing.access(link, refusal, request["address"]))
        raise sharing.REFUSALS[refusal]()
