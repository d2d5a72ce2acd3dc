"""Recaudo documents service: Document metadata, per-debtor folders, versions and share links; the bytes live in S3."""
