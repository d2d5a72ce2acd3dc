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


class Clients:
    """``count`` threads logging calls with a promise on ``accounts`` (``(account id,
    token)`` pairs: each client writes as the collector the account is assigned to)."""

    def __init__(self, base_url: str, accounts: list[tuple[int, str]], result_code_id: int,
                 count: int = 8, pause: float = 0.05):
        self.base_url, self.accounts, self.result_code_id = base_url, accounts, result_code_id
        self.count, self.pause = count, pause
        self.run_id = secrets.token_hex(4)
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._serial = itertools.count()

    def start(self) -> None:
        for n in range(self.count):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, drain_seconds: float = 60.0) -> None:
        """Stop starting writes; let the ones under way finish (retrying) for a while."""
        self._stop.set()
        for thread in self._threads:
            thread.join(drain_seconds)

    def marker(self, key: str) -> str:
        return f"faults {self.run_id} {key}"

    def _client(self, n: int) -> None:
        http = requests.Session()
        while not self._stop.is_set():
            account_id, token = self.accounts[next(self._serial) % len(self.accounts)]
            key = f"faults-{self.run_id}-{n}-{next(self._serial)}"
            self._write(http, key, account_id, token)
            time.sleep(self.pause)

    def _write(self, http: requests.Session, key: str, account_id: int, token: str) -> None:
        started = datetime.now(timezone.utc) - timedelta(minutes=2)
        body = {"account_id": account_id, "kind": "call", "direction": "inbound",
                "phone": "5512345678", "started_at": started.isoformat(),
                "ended_at": (started + timedelta(minutes=1)).isoformat(),
                "result_code_id": self.result_code_id, "description": self.marker(key),
                "promise": {"amount": "100.00",
                            "due_date": (date.today() + timedelta(days=7)).isoformat()}}
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                answer = http.post(self.base_url + "/api/v1/activities", json=body,
                                   headers=headers, timeout=20)
                status = answer.status_code
            except requests.RequestException:
                answer, status = None, 0
            self.ledger.record(status)
            if 200 <= status < 300:
                with self.ledger.lock:
                    self.ledger.accepted[key] = (answer.json()["id"], time.monotonic())
                return
            if status not in RETRYABLE:
                with self.ledger.lock:
                    self.ledger.refused[key] = f"{status} {answer.text[:200] if answer else ''}"
                return
            time.sleep(0.2)
        with self.ledger.lock:
            self.ledger.refused[key] = "gave up after 120 s"
