"""IMAP IDLE: a mailbox whose server offers it is synced as soon as mail arrives.

``@mailbox_idle`` marks the entrypoint called with a mailbox id when its server reports
new mail. The entrypoint keeps one green thread per active mailbox whose last sync saw
the IDLE capability, each holding an IDLE connection (re-issued every few minutes, as
RFC 2177 asks, and re-opened after any error). Polling (the sync timer) stays the
safety net: a mailbox without IDLE, or a watcher that lost its connection, is still
synced every SYNC_INTERVAL seconds.
"""
from __future__ import annotations

import logging

import eventlet
from nameko.extensions import Entrypoint
from sqlalchemy import select

from recaudo_common.db import make_engine

from . import mailsync
from .models import Mailbox

log = logging.getLogger(__name__)

#: how often the list of mailboxes to watch is read again
RESCAN_SECONDS = 30
#: an IDLE command is renewed this often (servers drop it after 30 minutes)
RENEW_SECONDS = 600
#: pause before reconnecting after an error
RETRY_SECONDS = 30


class MailboxIdle(Entrypoint):
    def setup(self):
        self.watchers: dict[int, eventlet.greenthread.GreenThread] = {}
        self.engine = None
        self.running = False

    def start(self):
        self.running = True
        self.engine = make_engine(pool_size=1)
        self.container.spawn_managed_thread(self._rescan)

    def stop(self):
        self.running = False
        for thread in self.watchers.values():
            thread.kill()
        self.watchers.clear()
        if self.engine is not None:
            self.engine.dispose()

    kill = stop

    def _rescan(self):
        while self.running:
            try:
                with self.engine.connect() as conn:
                    wanted = set(conn.execute(select(Mailbox.id).where(
                        Mailbox.active, Mailbox.idle_supported.is_(True))).scalars())
                for mailbox_id in wanted - set(self.watchers):
                    self.watchers[mailbox_id] = self.container.spawn_managed_thread(
                        lambda m=mailbox_id: self._watch(m))
                for mailbox_id in set(self.watchers) - wanted:
                    self.watchers.pop(mailbox_id).kill()
            except Exception:  # noqa: BLE001 - the database is away: try again later
                log.exception("IMAP IDLE: could not read the mailboxes")
            eventlet.sleep(RESCAN_SECONDS)

    def _watch(self, mailbox_id: int):
        while self.running:
            client = None
            try:
                with self.engine.connect() as conn:
                    mailbox = conn.execute(select(Mailbox).where(Mailbox.id == mailbox_id)).first()
                if mailbox is None:
                    return
                client = mailsync.connect(Mailbox(**mailbox._mapping), timeout=RENEW_SECONDS + 60)
                client.select_folder(mailbox.imap_folder, readonly=True)
                while self.running:
                    client.idle()
                    responses = client.idle_check(timeout=RENEW_SECONDS)
                    client.idle_done()
                    if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                        self.container.spawn_worker(self, (mailbox_id,), {})
            except Exception as exc:  # noqa: BLE001 - reconnect after a pause
                log.info("IMAP IDLE on mailbox %s: %s; retrying in %d s", mailbox_id, exc,
                         RETRY_SECONDS)
                eventlet.sleep(RETRY_SECONDS)
            finally:
                if client is not None:
                    mailsync._quietly(client.logout)


mailbox_idle = MailboxIdle.decorator
