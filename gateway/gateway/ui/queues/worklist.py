"""Working the queue: the collector's "Siguiente cuenta" button, what waits for them
(the home page's outlook), releasing an account, and their worklist."""
from __future__ import annotations

from flask import g, redirect, render_template, url_for

from recaudo_common.errors import NotFound

from ... import auth, timefmt
from .._common import page_arg
from ...rpc import rpc
from . import bp, debtor_url

WORKLIST_PER_PAGE = 25


@bp.post("/siguiente")
@auth.permission_required("queues.work")
def next_account():
    """Lease the next account and open its debtor; or a friendly "nothing now"."""
    with rpc() as proxy:
        lease = proxy.queues.next_account()
        if lease is None:
            return render_template("queues/next_empty.html", **work_outlook(proxy))
    return redirect(debtor_url(lease["debtor_id"], lease["account_id"], lease["queue_id"]))


def work_outlook(proxy) -> dict:
    """What the collector can do when the pull has nothing now (also on the home page):
    why (the queues' outlook: outside the contact hours and when they open, callbacks
    later, disputes, rest) and what else waits (today's agenda)."""
    outlook = proxy.queues.pull_outlook()
    agenda = []
    if "activities.read" in g.user["permissions"]:
        zone = str(timefmt.reader_zone())
        day = timefmt.institution_today(zone).isoformat()
        agenda = [item for item in proxy.activities.agenda_for({
            "date_from": day, "date_to": day, "agent_id": g.user["id"],
            "time_zone": zone}) if not item.get("done_at")]
    return {"outlook": outlook, "agenda_today": agenda}


@bp.post("/liberar/<int:account_id>")
@auth.permission_required("queues.work")
def release(account_id: int):
    try:
        with rpc() as proxy:
            proxy.queues.release_account(account_id)
    except NotFound:
        return redirect(url_for(".worklist", done="not_held"))
    return redirect(url_for(".worklist", done="released"))


@bp.get("/mi-lista")
@auth.permission_required("queues.work")
def worklist():
    with rpc() as proxy:
        page = proxy.queues.my_worklist({"page": page_arg(), "per_page": WORKLIST_PER_PAGE})
    return render_template("queues/worklist.html", page=page, section="worklist")
