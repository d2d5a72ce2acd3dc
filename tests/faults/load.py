"""A steady write load of clients that behave as a mobile app does: every write carries
its own ``Idempotency-Key`` and is sent again with the same key until the gateway
accepts it (or refuses it for good), so an outage may delay a write but never lose or
double it. What each client saw is kept for the table (``Outcome``) and for comparing
with the rows stored (``check_stored``).
"""
from __future__ import annotations

import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import requests

#: an answer worth sending the same write again for: the server or the network failed
RETRYABLE = {0, 502, 503, 504}


@dataclass
class Attempt:
    at: float            # time.monotonic() when it was answered
    status: int          # HTTP status, 0 for a connection failure or timeout


@dataclass
class Ledger:
    """Every attempt and every write accepted, shared by the clients."""
    attempts: list[Attempt] = field(default_factory=list)
    #: key -> (id answered, time.monotonic() when)
    accepted: dict[str, tuple[int, float]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)    # key -> final answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int) -> None:
        with self.lock:
            self.attempts.append(Attempt(time.monotonic(), status))

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first 2xx answered after it."""
        with self.lock:
            times = [a.at for a in self.attempts if a.at >= moment and 200 <= a.status < 300]
        return min(times) - moment if times else None

    def seconds_of_5xx(self, start: float, end: float) -> float:
        """How long, between ``start`` and ``end``, the clients kept seeing 5xx (or no
        answer): from the first to the last such answer in that span."""
        with self.lock:
            bad = [a.at for a in self.attempts
                   if start <= a.at <= end and (a.status >= 500 or a.status == 0)]
        return max(bad) - min(bad) if bad else 0.0

    def statuses(self, start: float, end: float) -> set[int]:
        with self.lock:
            return {a.status for a in self.attempts if start <= a.at <= end}


PDF = b"%PDF-1.4\n% faults\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


class Clients:
    """``count`` threads: most log calls with a promise on ``accounts`` (``(account id,
    token)`` pairs: each writes as the collector the account is assigned to), every fourth
    files a document in a debtor's folder (``debtors``: ``(debtor id, token)``): an upload
    ticket, the bytes to the object store, the completion."""

    def __init__(self, base_url: str, accounts: list[tuple[int, str]], result_code_id: int,
                 count: int = 8, pause: float = 0.05,
                 debtors: list[tuple[int, str]] | None = None):
        self.base_url, self.accounts, self.result_code_id = base_url, accounts, result_code_id
        self.debtors = debtors or []
        self.count, self.pause = count, pause
        self.run_id = secrets.token_hex(4)
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._going = threading.Event()
        self._going.set()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._serial = itertools.count()

    def start(self) -> None:
        for n in range(self.count):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def hold(self) -> None:
        """Let the writes under way finish, start no new one until ``resume``."""
        self._going.clear()
        for _ in self._threads:
            self._idle.acquire(timeout=150)

    def resume(self) -> None:
        self._going.set()

    def stop(self, drain_seconds: float = 60.0) -> None:
        """Stop starting writes; let the ones under way finish (retrying) for a while."""
        self._stop.set()
        self._going.set()
        for thread in self._threads:
            thread.join(drain_seconds)

    def marker(self, key: str) -> str:
        return f"faults {self.run_id} {key}"

    def document_name(self, key: str) -> str:
        return f"{key}.pdf"

    def _client(self, n: int) -> None:
        http = requests.Session()
        filing = self.debtors and n % 4 == 3
        while not self._stop.is_set():
            if not self._going.is_set():
                self._idle.release()
                self._going.wait()
                continue
            if filing:
                debtor_id, token = self.debtors[next(self._serial) % len(self.debtors)]
                self._file(http, f"faults-{self.run_id}-doc{n}-{next(self._serial)}",
                           debtor_id, token)
            else:
                account_id, token = self.accounts[next(self._serial) % len(self.accounts)]
                self._write(http, f"faults-{self.run_id}-{n}-{next(self._serial)}",
                            account_id, token)
            time.sleep(self.pause)

    def _send(self, http: requests.Session, method: str, url: str, key: str,
              deadline: float, **kwargs) -> requests.Response | None:
        """Send until answered for good: a 2xx or a refusal (kept in ``refused``)."""
        while time.monotonic() < deadline:
            try:
                answer = http.request(method, url, timeout=20, **kwargs)
                status = answer.status_code
            except requests.RequestException:
                answer, status = None, 0
            if url.startswith(self.base_url):  # the table is about the gateway's answers
                self.ledger.record(status)
            if 200 <= status < 300:
                return answer
            if status not in RETRYABLE:
                with self.ledger.lock:
                    self.ledger.refused[key] = f"{status} {answer.text[:200] if answer else ''}"
                return None
            time.sleep(0.2)
        with self.ledger.lock:
            self.ledger.refused[key] = "gave up after 120 s"
        return None

    def _file(self, http: requests.Session, key: str, debtor_id: int, token: str) -> None:
        """One document: the ticket, the bytes (again on the same ticket while the object
        store is away), then the completion (a repeat answers the same version)."""
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 120
        ticket = self._send(http, "POST", self.base_url + "/api/v1/documents/uploads", key,
                            deadline, headers=headers,
                            json={"debtor_id": debtor_id, "filename": self.document_name(key),
                                  "size": len(PDF)})
        if ticket is None:
            return
        ticket = ticket.json()
        sent = self._send(http, "POST", ticket["url"], key, deadline, data=ticket["fields"],
                          files={"file": (self.document_name(key), PDF)})
        if sent is None:
            return
        done = self._send(http, "POST", f"{self.base_url}/api/v1/documents/uploads/"
                                        f"{ticket['upload_id']}/complete", key, deadline,
                          headers=headers)
        if done is not None:
            with self.ledger.lock:
                self.ledger.accepted[key] = (done.json()["id"], time.monotonic())

    def _write(self, http: requests.Session, key: str, account_id: int, token: str) -> None:
        started = datetime.now(timezone.utc) - timedelta(minutes=2)
        body = {"account_id": account_id, "kind": "call", "direction": "inbound",
                "phone": "5512345678", "started_at": started.isoformat(),
                "ended_at": (started + timedelta(minutes=1)).isoformat(),
                "result_code_id": self.result_code_id, "description": self.marker(key),
                "promise": {"amount": "100.00",
                            "due_date": (date.today() + timedelta(days=7)).isoformat()}}
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        answer = self._send(http, "POST", self.base_url + "/api/v1/activities", key,
                            time.monotonic() + 120, json=body, headers=headers)
        if answer is not None:
            with self.ledger.lock:
                self.ledger.accepted[key] = (answer.json()["id"], time.monotonic())
