"""The object store (MinIO in deploy, s3rver locally and in tests), one client per process."""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from minio import Minio

from .config import settings


@lru_cache(maxsize=1)
def client() -> Minio:
    cfg = settings()
    endpoint = urlsplit(cfg.s3_endpoint)
    return Minio(endpoint.netloc, access_key=cfg.s3_access_key, secret_key=cfg.s3_secret_key,
                 secure=endpoint.scheme == "https", region="us-east-1")


@lru_cache(maxsize=1)
def bucket() -> str:
    """The platform's bucket, created on first use (remembered once it exists)."""
    name = settings().s3_bucket
    if not client().bucket_exists(name):
        client().make_bucket(name)
    return name
