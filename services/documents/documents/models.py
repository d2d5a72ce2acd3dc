"""Tables of the documents service, all in its own ``documents`` schema.

A debtor's folder holds ``documents`` (one per file name, case-insensitively); each
upload of that name adds a ``versions`` row, older versions stay. An upload is first a
``uploads`` row (the object key the client was allowed to write and until when); only a
completed, verified upload becomes a version, so a pending or rejected upload never
shows as a document, and the sweep deletes the objects of uploads that expired.

Share links are random tokens stored as SHA-256 digests; every attempt to use one,
allowed or not, is a ``share_accesses`` row (the access log, and what the password
throttle counts).
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer,
                        String, Text, func, text)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from recaudo_common.models import service_base

from .contracts import CATEGORIES

Base = service_base("documents")

#: the folder's categories (labels in the gateway's translations)
ACCESS_OUTCOMES = ("listed", "downloaded", "wrong_password", "throttled", "expired", "revoked")


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _now():
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Upload(Base):
    """A presigned upload handed out and not yet completed (deleted when it completes, is
    rejected or expires)."""

    __tablename__ = "uploads"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    object_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    activity_id: Mapped[int | None] = mapped_column(BigInteger)
    dispute_id: Mapped[int | None] = mapped_column(BigInteger)
    category: Mapped[str] = mapped_column(String(30), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    declared_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    declared_md5: Mapped[str | None] = mapped_column(String(32))
    uploaded_by: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    __table_args__ = (Index("ix_uploads_expires_at", "expires_at"),
                      CheckConstraint(_in("category", CATEGORIES), name="category"))


class Document(Base):
    """A file of a debtor's folder: its name, category and links; the bytes are in versions."""

    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    activity_id: Mapped[int | None] = mapped_column(BigInteger)
    dispute_id: Mapped[int | None] = mapped_column(BigInteger)
    category: Mapped[str] = mapped_column(String(30), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    latest_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    __table_args__ = (
        # one document per name in a folder: uploading the same name adds a version
        Index("uq_documents_folder_name", "debtor_id", text("lower(name)"), unique=True),
        Index("ix_documents_institution_updated", "institution_id", "updated_at"),
        Index("ix_documents_activity_id", "activity_id", postgresql_where=text("activity_id IS NOT NULL")),
        Index("ix_documents_dispute_id", "dispute_id", postgresql_where=text("dispute_id IS NOT NULL")),
        CheckConstraint(_in("category", CATEGORIES), name="category"),
    )


class Version(Base):
    """One verified upload of a document: where its bytes are and what they are."""

    __tablename__ = "versions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"),
                                             nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    #: the upload it came from (a repeated completion answers this version)
    upload_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, unique=True)
    object_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(120), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: hex MD5 of the bytes (the object store's ETag of a single-part upload, checked
    #: against the client's declared digest when it gave one)
    checksum: Mapped[str] = mapped_column(String(32), nullable=False)
    uploaded_by: Mapped[int] = mapped_column(Integer, nullable=False)
    uploaded_at: Mapped[datetime] = _now()
    __table_args__ = (Index("uq_versions_document_version", "document_id", "version", unique=True),
                      CheckConstraint("size > 0", name="size"))


class ShareLink(Base):
    """A link to one document (``document_id``) or to a debtor's whole folder."""

    __tablename__ = "share_links"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    institution_id: Mapped[int] = mapped_column(Integer, nullable=False)
    debtor_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    label: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _now()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (Index("ix_share_links_institution", "institution_id", "created_at"),
                      Index("ix_share_links_debtor", "debtor_id"))


class ShareAccess(Base):
    """One use of a share link, allowed or refused: when, from where, what."""

    __tablename__ = "share_accesses"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("share_links.id", ondelete="CASCADE"),
                                         nullable=False)
    at: Mapped[datetime] = _now()
    address: Mapped[str | None] = mapped_column(String(64))
    version_id: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    __table_args__ = (Index("ix_share_accesses_link_at", "link_id", "at"),
                      CheckConstraint(_in("outcome", ACCESS_OUTCOMES), name="outcome"))
