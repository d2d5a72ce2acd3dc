"""The object store (MinIO in deploy, s3rver locally and in tests), one client per process."""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from minio import Minio

from .config import settings


def _client(url: str) -> Minio:
    cfg = settings()
    endpoint = urlsplit(url)
    # the region is given so presigning never asks the server for it
    return Minio(endpoint.netloc, access_key=cfg.s3_access_key, secret_key=cfg.s3_secret_key,
                 secure=endpoint.scheme == "https", region="us-east-1")


@lru_cache(maxsize=1)
def client() -> Minio:
    return _client(settings().s3_endpoint)


@lru_cache(maxsize=1)
def public_client() -> Minio:
    """Signs the URLs browsers and apps use (it never connects anywhere itself)."""
    cfg = settings()
    return _client(cfg.s3_public_endpoint or cfg.s3_endpoint)


def public_url(key: str = "") -> str:
    """The public address of the bucket (a presigned POST goes there) or of one object."""
    cfg = settings()
    base = (cfg.s3_public_endpoint or cfg.s3_endpoint).rstrip("/")
    return f"{base}/{bucket()}" + (f"/{key}" if key else "")


@lru_cache(maxsize=1)
def bucket() -> str:
    """The platform's bucket, created on first use (remembered once it exists)."""
    name = settings().s3_bucket
    if not client().bucket_exists(name):
        client().make_bucket(name)
    return name
