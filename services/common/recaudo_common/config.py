"""Process configuration, read from the environment once, with local defaults.

Every process (a nameko service, the gateway, a CLI) calls ``settings()``;
nothing else in the code base reads ``os.environ``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

#: The services of the platform, in start order. The runner, the gateway's
#: health check and the compose-file test all read this one list.
SERVICES = ("auth", "portfolio", "queues", "activities", "documents", "messaging", "reports")

_DEV_IDENTITY_KEY = "recaudo-local-development-identity-key-change-me"


def _env_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/recaudo"
    amqp_uri: str = "amqp://guest:guest@127.0.0.1:5672/recaudo"
    rabbit_management_url: str = "http://guest:guest@127.0.0.1:15672"
    #: HMAC key shared by the gateway, auth and every service to sign and
    #: verify the caller's identity that travels in nameko context data.
    identity_key: str = _DEV_IDENTITY_KEY
    identity_ttl_seconds: int = 900
    #: seconds a gateway process keeps an identity it resolved (0: ask auth every time);
    #: revocations reach it by event at once, this is only the safety net
    identity_cache_seconds: float = 30.0
    identity_cache_size: int = 10_000
    s3_endpoint: str = "http://127.0.0.1:9000"
    s3_access_key: str = "S3RVER"
    s3_secret_key: str = "S3RVER"
    s3_bucket: str = "recaudo-documents"
    #: the object store as browsers reach it, for the presigned URLs handed to them
    #: (in compose the services say ``minio:9000``, a browser cannot); empty: s3_endpoint
    s3_public_endpoint: str = ""
    log_format: str = "text"          # "text" locally, "json" in deploy
    log_level: str = "INFO"
    demo: bool = True
    db_pool_size: int = 10
    #: psycopg prepares a statement after this many executions; "none" never (behind
    #: PgBouncer in transaction mode, a prepared statement would not follow its session)
    db_prepare_threshold: str = "5"
    rpc_timeout: float = 30.0
    health_timeout: float = 3.0
    rpc_pool_size: int = 8
    outbox_poll_seconds: float = 2.0
    #: a file the process touches every few seconds while its event loop runs, read by
    #: liveness probes (``healthcheck --live``); empty: none. The local runner gives each
    #: process its own under <var>/run
    heartbeat_file: str = ""
    #: "classic" (one broker) or "quorum" (replicated over a RabbitMQ cluster): the type of
    #: every durable RPC and event queue the services declare (``queue_type.py``)
    queue_type: str = "classic"
    #: partners' webhooks (messaging's ``partner_hooks``): a URL resolving to a loopback
    #: address (127.0.0.0/8, ::1) is refused unless this is on - for tests only, whose
    #: receiver listens on 127.0.0.1; private and link-local addresses are refused always
    webhook_allow_loopback: bool = False
    #: a CA bundle (PEM) the deliverer trusts instead of the system's (a test's own CA)
    webhook_ca_bundle: str = ""
    #: seconds a partner's endpoint has to answer one delivery
    webhook_timeout_seconds: float = 10.0
    #: the first retry's delay; each further one doubles it (at most an hour), for 24 h
    webhook_retry_base_seconds: float = 10.0
    gateway_secret_key: str = "recaudo-local-development-secret-change-me"
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    #: the site's address as users reach it (``https://cobranza.example.mx``): https here
    #: makes the gateway mark cookies Secure and send HSTS even behind a TLS-ending proxy;
    #: messaging prints it in the portal links campaigns send (``site_url``)
    public_url: str = ""
    #: comma-separated addresses or networks (CIDR) of reverse proxies whose
    #: ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed; empty: none, the
    #: connecting address is the client's
    trusted_proxies: str = ""
    #: where the local runner keeps pid files, logs and the S3 server's data
    var_dir: str = "var"
    #: the local runner's demo mail servers (dovecot IMAP, aiosmtpd sink): local only
    local_imap_port: int = 10143
    local_smtp_port: int = 10025
    #: the local runner's SMS gateway (Kannel with the fake SMSC; messaging/kannel.py): its
    #: sendsms port and the four after it. Local only
    local_kannel_port: int = 13013
    #: where the messaging service listens for its SMS gateway's callbacks (Kannel's
    #: delivery reports and incoming messages: /kannel/dlr, /kannel/mo)
    sms_callback_address: str = "127.0.0.1:13080"
    #: that listener as the SMS gateway reaches it (the base of every ``dlr-url``)
    sms_callback_url: str = "http://127.0.0.1:13080"

    @property
    def site_url(self) -> str:
        """The address links sent to people start with: ``public_url``, or the local
        gateway's where none is set (a development or test stack)."""
        return (self.public_url or f"http://{self.gateway_host}:{self.gateway_port}").rstrip("/")

    @property
    def prepare_threshold(self) -> int | None:
        value = self.db_prepare_threshold.strip().lower()
        return None if value in ("", "none") else int(value)

    @property
    def nameko(self) -> dict:
        """The config dict nameko containers and standalone proxies expect."""
        return {"AMQP_URI": self.amqp_uri, "serializer": "json",
                "WEB_SERVER_ADDRESS": self.sms_callback_address}


#: settings only the local runner reads (its state directory, its stand-in mail servers)
#: and the tests' (a partner's webhook receiver on 127.0.0.1): no deployment sets them
LOCAL_ONLY = frozenset({"RECAUDO_VAR_DIR", "RECAUDO_LOCAL_IMAP_PORT", "RECAUDO_LOCAL_SMTP_PORT",
                        "RECAUDO_LOCAL_KANNEL_PORT", "RECAUDO_WEBHOOK_ALLOW_LOOPBACK"})
#: settings only the gateway reads
GATEWAY_ONLY = frozenset({"RECAUDO_GATEWAY_HOST", "RECAUDO_GATEWAY_PORT",
                          "RECAUDO_GATEWAY_SECRET_KEY", "RECAUDO_TRUSTED_PROXIES"})

#: environment variable -> Settings attribute
ENV = {
    "RECAUDO_DATABASE_URL": "database_url",
    "RECAUDO_AMQP_URI": "amqp_uri",
    "RECAUDO_RABBIT_MANAGEMENT_URL": "rabbit_management_url",
    "RECAUDO_IDENTITY_KEY": "identity_key",
    "RECAUDO_IDENTITY_TTL": "identity_ttl_seconds",
    "RECAUDO_IDENTITY_CACHE_SECONDS": "identity_cache_seconds",
    "RECAUDO_IDENTITY_CACHE_SIZE": "identity_cache_size",
    "RECAUDO_S3_ENDPOINT": "s3_endpoint",
    "RECAUDO_S3_ACCESS_KEY": "s3_access_key",
    "RECAUDO_S3_SECRET_KEY": "s3_secret_key",
    "RECAUDO_S3_BUCKET": "s3_bucket",
    "RECAUDO_S3_PUBLIC_ENDPOINT": "s3_public_endpoint",
    "RECAUDO_LOG_FORMAT": "log_format",
    "RECAUDO_LOG_LEVEL": "log_level",
    "RECAUDO_DEMO": "demo",
    "RECAUDO_DB_POOL_SIZE": "db_pool_size",
    "RECAUDO_DB_PREPARE_THRESHOLD": "db_prepare_threshold",
    "RECAUDO_RPC_TIMEOUT": "rpc_timeout",
    "RECAUDO_HEALTH_TIMEOUT": "health_timeout",
    "RECAUDO_RPC_POOL_SIZE": "rpc_pool_size",
    "RECAUDO_OUTBOX_POLL_SECONDS": "outbox_poll_seconds",
    "RECAUDO_HEARTBEAT_FILE": "heartbeat_file",
    "RECAUDO_QUEUE_TYPE": "queue_type",
    "RECAUDO_WEBHOOK_ALLOW_LOOPBACK": "webhook_allow_loopback",
    "RECAUDO_WEBHOOK_CA_BUNDLE": "webhook_ca_bundle",
    "RECAUDO_WEBHOOK_TIMEOUT_SECONDS": "webhook_timeout_seconds",
    "RECAUDO_WEBHOOK_RETRY_BASE_SECONDS": "webhook_retry_base_seconds",
    "RECAUDO_GATEWAY_SECRET_KEY": "gateway_secret_key",
    "RECAUDO_GATEWAY_HOST": "gateway_host",
    "RECAUDO_GATEWAY_PORT": "gateway_port",
    "RECAUDO_PUBLIC_URL": "public_url",
    "RECAUDO_TRUSTED_PROXIES": "trusted_proxies",
    "RECAUDO_VAR_DIR": "var_dir",
    "RECAUDO_LOCAL_IMAP_PORT": "local_imap_port",
    "RECAUDO_LOCAL_SMTP_PORT": "local_smtp_port",
    "RECAUDO_LOCAL_KANNEL_PORT": "local_kannel_port",
    "RECAUDO_SMS_CALLBACK_ADDRESS": "sms_callback_address",
    "RECAUDO_SMS_CALLBACK_URL": "sms_callback_url",
}


def from_env(environ: dict | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values = {}
    defaults = Settings()
    for var, attr in ENV.items():
        if var not in environ:
            continue
        kind = type(getattr(defaults, attr))
        raw = environ[var]
        values[attr] = _env_bool(raw) if kind is bool else kind(raw)
    return Settings(**values)


@lru_cache(maxsize=1)
def settings() -> Settings:
    return from_env()
