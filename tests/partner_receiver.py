"""A partner's small HTTPS endpoint on 127.0.0.1 for the webhook tests (integration, e2e,
perf): its own CA and a certificate for 127.0.0.1 made at start (the deliverer trusts the
CA through ``RECAUDO_WEBHOOK_CA_BUNDLE``), every request's signature checked against the
subscription's secret and its connection noted (the client's port), and behaviours a test
sets: answer 500 to an event's first N attempts, hang on some events. Records what it accepted, in arrival order, with the time.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import ssl
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA bundle, server certificate, server key) for 127.0.0.1."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Recaudo test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Receiver:
    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="recaudo-receiver-"))
        self.ca_bundle, cert, key = _certificates(self.directory)
        self.secrets: list[str] = []
        self.accepted: list[dict] = []       # bodies accepted (2xx), in arrival order
        self.requests: list[dict] = []       # every request: event id, status, bad signature
        self.fail_first: dict[str, int] = {}  # event type -> attempts answered 500 (each event)
        self.hang_types: set[str] = set()     # event types left hanging
        self.hang_accounts: set[int] = set()  # accounts whose events are left hanging
        self._seen: dict[str, int] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver._handle(self.headers, raw, self.client_address[1])
                if status is None:      # hang: never answer (the deliverer times out)
                    time.sleep(120)
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _valid(self, headers, raw: bytes) -> bool:
        stamp, event_id = headers.get("X-Recaudo-Timestamp", ""), headers.get("X-Recaudo-Event-Id", "")
        signed = headers.get("X-Recaudo-Signature", "")
        message = f"{stamp}.{event_id}.".encode() + raw
        fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
        return fresh and any(
            hmac.compare_digest(signed, "v1=" + hmac.new(s.encode(), message, hashlib.sha256).hexdigest())
            for s in self.secrets)

    def _handle(self, headers, raw: bytes, connection: int = 0):
        body = json.loads(raw)
        good = self._valid(headers, raw) and body["id"] == headers.get("X-Recaudo-Event-Id")
        with self.lock:
            tries = self._seen[body["id"]] = self._seen.get(body["id"], 0) + 1
            entry = {"event_id": body["id"], "type": body["type"], "account_id": body["account_id"],
                     "signed": good, "try": tries, "at": time.time(),
                     "connection": connection}
            self.requests.append(entry)
            if not good:
                entry["status"] = 401
                return 401
            if body["type"] in self.hang_types or body["account_id"] in self.hang_accounts:
                entry["status"] = None
                return None
            if tries <= self.fail_first.get(body["type"], 0):
                entry["status"] = 500
                return 500
            entry["status"] = 200
            self.accepted.append({**body, "received_at": time.time()})
            return 200

    def of_account(self, account_id: int) -> list[dict]:
        with self.lock:
            return [b for b in self.accepted if b["account_id"] == account_id]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
