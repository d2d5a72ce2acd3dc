"""The per-account hash chain that makes the contact log tamper-evident.

Each entry's hash is SHA-256 over the previous entry's hash and a canonical JSON of
the entry's content (UTC timestamps to the microsecond, sorted keys), so editing,
removing or reordering any entry breaks every later link. ``chain_heads`` keeps the
last position and hash of each account: appending locks that row (appends to one
account are serialised, other accounts are not blocked), and verifying compares the
end of the chain with it, so removing the newest entries is caught too.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from .models import Activity, ChainHead

GENESIS = "0" * 64
#: the columns an entry's hash covers (everything but its id and the hashes themselves)
HASHED = ("account_id", "seq", "institution_id", "debtor_id", "agent_id", "logged_by", "queue_id",
          "kind", "direction", "phone", "email", "address", "started_at", "ended_at",
          "result_code_id", "result_code", "contact_made", "description", "details",
          "corrects_id", "idempotency_key", "recorded_at")
VERIFY_BATCH = 1000


def _canonical_value(value):
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a hashed entry")
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def entry_hash(prev_hash: str, entry: dict) -> str:
    """The hash of ``entry`` (a mapping with every ``HASHED`` key) chained to ``prev_hash``."""
    body = {key: _canonical_value(entry[key]) for key in HASHED}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{text}".encode()).hexdigest()


def lock_head(session: Session, account_id: int, institution_id: int) -> ChainHead:
    """The account's chain head, row-locked until the transaction ends (created if new), in
    one statement: an upsert locks the row it finds, and answers it."""
    return lock_heads(session, {account_id: institution_id})[account_id]


def lock_heads(session: Session, accounts: dict[int, int]) -> dict[int, ChainHead]:
    """``lock_head`` for many accounts (account id -> institution id) in one statement,
    locked in account order; answers the heads by account id."""
    if not accounts:
        return {}
    upsert = insert(ChainHead).values([
        {"account_id": a, "institution_id": accounts[a], "seq": 0, "hash": GENESIS}
        for a in sorted(accounts)])
    upsert = upsert.on_conflict_do_update(index_elements=[ChainHead.account_id],
                                          set_={"account_id": upsert.excluded.account_id}
                                          ).returning(ChainHead)
    heads = session.execute(select(ChainHead).from_statement(upsert)
                            .execution_options(populate_existing=True)).scalars().all()
    return {head.account_id: head for head in heads}


def _link(head: ChainHead, entry: dict) -> dict:
    """``entry`` as the next link after ``head``, which moves on to it."""
    entry = dict(entry, seq=head.seq + 1, prev_hash=head.hash)
    entry["hash"] = entry_hash(head.hash, entry)
    head.seq, head.hash = entry["seq"], entry["hash"]
    return entry


def append(session: Session, head: ChainHead, entry: dict) -> Activity:
    """Insert ``entry`` as the next link after ``head`` (locked by ``lock_head``)."""
    activity = Activity(**_link(head, entry))
    session.add(activity)
    session.flush()
    return activity


def append_many(session: Session, heads: dict[int, ChainHead], entries: list[dict]
                ) -> list[Activity]:
    """``append`` for many entries in one insert (a history written at once): each links
    after its account's head in ``heads`` (locked by ``lock_heads``), in the given order."""
    links = [_link(heads[entry["account_id"]], entry) for entry in entries]
    if not links:
        return []
    activities = session.scalars(insert(Activity).returning(
        Activity, sort_by_parameter_order=True), links).all()
    session.flush()   # the heads
    return list(activities)


def verify(session: Session, account_id: int) -> dict:
    """Walk the account's chain; answer ``ok`` or the first entry that does not fit."""
    head = session.get(ChainHead, account_id)
    expected_seq, prev_hash, last_id, count = 1, GENESIS, None, 0

    def broken(activity_id, seq, reason):
        return {"account_id": account_id, "ok": False, "entries": count,
                "broken_id": activity_id, "broken_seq": seq, "reason": reason}

    columns = [getattr(Activity, c) for c in (*HASHED, "id", "prev_hash", "hash")]
    after = 0
    while True:
        rows = session.execute(select(*columns).where(Activity.account_id == account_id,
                                                      Activity.seq > after)
                               .order_by(Activity.seq).limit(VERIFY_BATCH)).mappings().all()
        for row in rows:
            count += 1
            if row["seq"] != expected_seq:
                return broken(row["id"], row["seq"],
                              f"Falta la entrada {expected_seq} de la cadena")
            if row["prev_hash"] != prev_hash:
                return broken(row["id"], row["seq"], "No enlaza con la entrada anterior")
            if entry_hash(prev_hash, row) != row["hash"]:
                return broken(row["id"], row["seq"], "El contenido no corresponde a su huella")
            expected_seq, prev_hash, last_id = expected_seq + 1, row["hash"], row["id"]
        if len(rows) < VERIFY_BATCH:
            break
        after = rows[-1]["seq"]
    if head is not None and (head.seq != expected_seq - 1 or head.hash != prev_hash):
        return broken(None, head.seq, "Faltan entradas al final de la cadena")
    if head is None and count:
        return broken(None, None, "La cadena no tiene cabeza registrada")
    return {"account_id": account_id, "ok": True, "entries": count, "broken_id": None,
            "broken_seq": None, "reason": "", "last_id": last_id}
