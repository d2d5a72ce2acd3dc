"""The documents service's entrypoints for the debtor portal, mixed into
``DocumentsService``: a debtor's portal session uploads a file (a dispute's evidence)
into their own folder through the same presigned POST and the same checks (size, kind
sniffed from the bytes: an executable is refused) as a collector's upload, and reads the
documents the institution shared with them (its active share links to their folder) and
those they sent with a dispute (filed with it when the activities service opens it)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import delete, select

from recaudo_common.errors import InvalidInput, NotFound
from recaudo_common.service import rpc
from recaudo_common.validation import load

from . import folders, sharing
from .models import Document, ShareLink, Upload, Version
from .contracts import DownloadOut, UploadRequest, UploadTicket


class PortalEntrypoints:
    @rpc
    def portal_request_upload(self, data):
        """A presigned POST for one file on one of the debtor's own accounts."""
        identity = self.caller.identity.require_debtor()
        data = load(UploadRequest(), {**(data or {}), "debtor_id": identity.debtor_id})
        if data["account_id"] is None:
            raise InvalidInput("Indique la cuenta", {"account_id": ["Requerido"]})
        account = self.portfolio.portal_account(data["account_id"])   # theirs, or NotFound
        debtor = {"id": identity.debtor_id, "institution_id": account["institution_id"],
                  "account_ids": [account["id"]]}
        with self.db.session() as session:
            return UploadTicket().dump(folders.request_upload(session, identity, debtor, data))

    @rpc
    def portal_complete_upload(self, upload_id):
        """Verify what arrived (an executable, a mislabelled file are refused) and file it."""
        identity = self.caller.identity.require_debtor()
        try:
            upload_id = uuid.UUID(str(upload_id))
        except ValueError:
            raise InvalidInput("Carga inválida", {"upload_id": ["Identificador inválido"]}) from None
        with self.db.session() as session:
            upload = session.get(Upload, upload_id)
            if upload is None or (upload.institution_id, upload.debtor_id) != (
                    identity.debtor_institution_id, identity.debtor_id):
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
            if stored is None:
                raise NotFound("Carga vencida: súbalo de nuevo")
            document, version = stored
            self.db.emit(session, "document_added", {
                "document_id": document.id, "version_id": version.id, "version": version.version,
                "institution_id": document.institution_id, "debtor_id": document.debtor_id,
                "account_id": document.account_id, "activity_id": document.activity_id,
                "dispute_id": document.dispute_id, "category": document.category,
                "name": version.name, "content_type": version.content_type, "size": size,
                "uploaded_by": version.uploaded_by})
            return folders.describe(session, session.get(Document, document.id))

    def _shared(self, session, identity) -> list[dict]:
        """The documents the institution shared with the debtor: those its active share
        links reach (a link to one document, or to the whole folder)."""
        links = session.execute(select(ShareLink).where(
            ShareLink.debtor_id == identity.debtor_id,
            ShareLink.institution_id == identity.debtor_institution_id,
            ShareLink.revoked_at.is_(None),
            ShareLink.expires_at > datetime.now(timezone.utc))).scalars().all()
        seen: dict[int, dict] = {}
        for link in links:
            for document in sharing.documents_of(session, link):
                seen.setdefault(document["id"], document)
        return sorted(seen.values(), key=lambda d: d["name"].lower())

    @rpc
    def portal_documents(self):
        identity = self.caller.identity.require_debtor()
        with self.db.session() as session:
            return self._shared(session, identity)

    @staticmethod
    def _own_upload(identity, document: Document, version: Version) -> bool:
        """A version the debtor's portal session uploaded into their own folder (no activity
        of the agency's filed it: a message's attachments and sent letters are not theirs)."""
        return ((document.institution_id, document.debtor_id) == (
            identity.debtor_institution_id, identity.debtor_id)
            and document.activity_id is None and version.uploaded_by == identity.user_id)

    @rpc
    def portal_dispute_evidence(self, version_id, dispute_id):
        """File the debtor's own upload with their dispute (the activities service asks, as
        the debtor, while opening it): its folder entry names the dispute. Answers the
        version; another's, or one already filed with another dispute, answers like missing."""
        identity = self.caller.identity.require_debtor()
        if not all(isinstance(v, int) and not isinstance(v, bool)
                   for v in (version_id, dispute_id)):
            raise NotFound("Documento no encontrado")
        with self.db.session() as session:
            found = session.execute(select(Document, Version).join(
                Version, Version.document_id == Document.id).where(Version.id == version_id)
                .with_for_update(of=Document)).first()
            if found is None or not self._own_upload(identity, *found) or \
                    found[0].dispute_id not in (None, dispute_id):
                raise NotFound("Documento no encontrado")
            document, version = found
            document.dispute_id = dispute_id
            return {"version_id": version.id, "document_id": document.id, "name": version.name,
                    "content_type": version.content_type, "size": version.size}

    @rpc
    def portal_download_url(self, version_id):
        """A short presigned GET of a version of a document shared with the debtor, or of
        one they sent with a dispute."""
        identity = self.caller.identity.require_debtor()
        if not isinstance(version_id, int) or isinstance(version_id, bool):
            raise NotFound("Documento no encontrado")
        with self.db.session() as session:
            found = session.execute(select(Document, Version).join(
                Version, Version.document_id == Document.id).where(Version.id == version_id)
                ).first()
            disputed = found is not None and found[0].dispute_id is not None and \
                self._own_upload(identity, *found)
            if not disputed and version_id not in {
                    v["id"] for d in self._shared(session, identity)
                    for v in d.get("versions", [])}:
                raise NotFound("Documento no encontrado")
            return DownloadOut().dump(folders.download(found[1]))
