"""The messaging service's entrypoints for partners' webhooks (``partner_hooks``): the
subscription RPCs (``webhooks.manage``, within the caller's institutions), the handlers
turning the services' events into deliveries, and the delivery timer - woken as soon as
there may be something to send (``partner_hooks.wake``: an event recorded, a send settled),
else every ``TICK_SECONDS`` for retries coming due and leases run out. A mixin of
``MessagingService``, which provides ``db``, ``caller`` and ``portfolio``."""
from __future__ import annotations

import logging

from nameko.timer import Timer

from recaudo_common import references
from recaudo_common.db import ServiceDatabase
from recaudo_common.service import event_handler, rpc
from recaudo_common.validation import load

from . import partner_hooks as hooks
from .contracts import (DeliveryOut, DeliveryPage, DeliveryQuery, SubscriptionChange,
                              SubscriptionCreate, SubscriptionCreated, SubscriptionOut)

log = logging.getLogger(__name__)
#: how often each instance looks for due deliveries when nothing woke it
TICK_SECONDS = 0.5


class WakeableTimer(Timer):
    """nameko's timer, whose wait ``partner_hooks.wake`` cuts short (wakes while a tick
    runs make one more tick right after it); the wait is ``TICK_SECONDS`` as it is then
    (tests stretch it to see that wakes alone deliver)."""

    def _run(self):
        while not self.should_stop.ready():
            hooks.wait_for_work(TICK_SECONDS)
            if self.should_stop.ready():
                break
            self.handle_timer_tick()
            self.worker_complete.wait()
            self.worker_complete.reset()

    def stop(self):
        self.should_stop.send(True)
        hooks.wake()
        self.gt.wait()


wakeable_timer = WakeableTimer.decorator


class PartnerWebhooks:
    # --- subscriptions -----------------------------------------------------------------------

    @rpc
    def list_webhook_subscriptions(self):
        identity = self.caller.require("webhooks.manage")
        with self.db.session() as session:
            return SubscriptionOut(many=True).dump(hooks.list_subscriptions(session, identity))

    @rpc
    def create_webhook_subscription(self, data):
        """A partner's HTTPS endpoint for some events of its institution; the answer holds
        the signing secret, shown this once."""
        identity = self.caller.require("webhooks.manage")
        data = load(SubscriptionCreate(), data)
        references.require_institution(self.portfolio, identity, data["institution_id"])
        with self.db.session() as session:
            return SubscriptionCreated().dump(hooks.create(session, identity, data))

    @rpc
    def update_webhook_subscription(self, subscription_id, data):
        identity = self.caller.require("webhooks.manage")
        data = load(SubscriptionChange(), data)
        with self.db.session() as session:
            return SubscriptionOut().dump(hooks.change(session, identity, subscription_id, data))

    @rpc
    def delete_webhook_subscription(self, subscription_id):
        identity = self.caller.require("webhooks.manage")
        with self.db.session() as session:
            hooks.remove(session, identity, subscription_id)

    @rpc
    def webhook_deliveries(self, subscription_id, query=None):
        """The delivery log of a subscription, newest first, with each attempt's answer."""
        identity = self.caller.require("webhooks.manage")
        query = load(DeliveryQuery(), query or {})
        with self.db.session() as session:
            return DeliveryPage().dump(hooks.deliveries_page(
                session, identity, subscription_id, query["page"], query["per_page"]))

    @rpc
    def resend_webhook_delivery(self, delivery_id):
        identity = self.caller.require("webhooks.manage")
        with self.db.session() as session:
            out = DeliveryOut().dump(hooks.send_again(session, identity, delivery_id))
        hooks.wake()
        return out

    # --- events become deliveries -----------------------------------------------------------

    def _partner_event(self, event_type: str, payload: dict) -> None:
        recorded = 0
        with self.db.session() as session:
            if self.db.first_time(session, payload["event_id"], f"partner_{event_type}"):
                recorded = hooks.record(session, event_type, payload)
        if recorded:
            hooks.wake_after_grace()   # committed: sendable once the grace is over

    @event_handler("portfolio", "payment_received")
    def partner_payment_received(self, payload):
        self._partner_event("payment_received", payload)

    @event_handler("portfolio", "stage_changed")
    def partner_stage_changed(self, payload):
        self._partner_event("stage_changed", payload)

    @event_handler("activities", "promise_made")
    def partner_promise_made(self, payload):
        self._partner_event("promise_made", payload)

    @event_handler("activities", "promise_kept")
    def partner_promise_kept(self, payload):
        self._partner_event("promise_kept", payload)

    @event_handler("activities", "promise_broken")
    def partner_promise_broken(self, payload):
        self._partner_event("promise_broken", payload)

    @event_handler("activities", "dispute_opened")
    def partner_dispute_opened(self, payload):
        self._partner_event("dispute_opened", payload)

    @event_handler("activities", "dispute_resolved")
    def partner_dispute_resolved(self, payload):
        self._partner_event("dispute_resolved", payload)

    @event_handler("activities", "activity_logged")
    def partner_activity_logged(self, payload):
        self._partner_event("activity_logged", payload)

    # --- sending ---------------------------------------------------------------------------

    @wakeable_timer(interval=TICK_SECONDS)
    def deliver_partner_webhooks(self):
        """Lease the due heads of the chains (as many as there are free senders) and hand
        each to a sender; the tick returns at once, a slow endpoint never holds it."""
        room = hooks.free_senders()
        if room <= 0:
            return
        with self.db.session() as session:
            jobs = hooks.claim(session, room)
        db = ServiceDatabase(self.db._provider)   # the senders outlive this worker
        for job in jobs:
            hooks.spawn(_send_and_settle, db, job)


def _send_and_settle(db: ServiceDatabase, job: dict) -> None:
    outcome = hooks.send(job)
    try:
        with db.session() as session:
            paused = hooks.settle(session, job["id"], outcome)
            mail = hooks.notice(session, paused) if paused is not None else None
        if mail is not None:
            hooks.mail_notice(*mail)
    except Exception:   # the lease runs out and another tick sends it again
        log.exception("webhook delivery %s not settled", job["id"])
        return
    hooks.wake()   # the next of its chain, or what waited for a free sender
