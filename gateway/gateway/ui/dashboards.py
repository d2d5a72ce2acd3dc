"""Dashboards: the supervisor's day with live counters, and the institution overview
(which is also the creditor portal's front page).

The supervisor's day is drawn with today's counters, then kept current without reload:
the page opens a Server-Sent Events stream (``/tableros/supervisor/eventos``) that
listens to the activities service's events (activity logged, promise made, kept or
broken) through ``events.Subscription`` and, after each burst of them, asks the
activities service for the counters again with the viewer's own identity and pushes
them. The counters come from the rollup the same transaction as the activity updated,
so what the page shows is never behind the log, and a viewer only ever receives what
the service lets them read. Charts are Chart.js (npm, ``deploy/assets.py``).
"""
from __future__ import annotations

from datetime import date, timedelta

from flask import (Blueprint, Response, current_app, g, redirect, render_template, request,
                   url_for)
from flask_babel import gettext as _

from recaudo_common.errors import DomainError, InvalidInput

from .. import auth, events, reporting, timefmt
from ._common import debtor_screens
from ..rpc import rpc

bp = debtor_screens(Blueprint("dashboards_ui", __name__))

LIVE_EVENTS = ("activity_logged", "promise_made", "promise_kept", "promise_broken")


def _chart_data(data: dict) -> dict:
    """What the overview's charts draw (labels translated here, numbers as numbers)."""
    buckets = {code: {"accounts": 0, "balance": 0.0} for code in reporting.BUCKET_LABELS}
    for row in data["aging"]["rows"]:
        buckets[row["bucket"]]["accounts"] += row["accounts"]
        buckets[row["bucket"]]["balance"] += float(row["balance"])
    days = [data["date_from"]]
    while days[-1] < data["date_to"]:
        days.append((date.fromisoformat(days[-1]) + timedelta(days=1)).isoformat())
    collected = {r["day"]: float(r["collected"]) for r in data["recovery"]["rows"]}
    activity = {r["day"]: r["activities"] for r in data["productivity"]["rows"]}
    contacts = {r["day"]: r["contacts"] for r in data["productivity"]["rows"]}
    return {
        "aging": {"labels": [_(reporting.BUCKET_LABELS[c]) for c in buckets],
                  "balance": [b["balance"] for b in buckets.values()],
                  "accounts": [b["accounts"] for b in buckets.values()],
                  "title": _("Saldo por días de atraso")},
        "days": {"labels": days, "collected": [collected.get(d, 0) for d in days],
                 "activities": [activity.get(d, 0) for d in days],
                 "contacts": [contacts.get(d, 0) for d in days],
                 "collected_label": _("Cobrado"), "activities_label": _("Gestiones"),
                 "contacts_label": _("Contactos")},
    }


# --- the institution overview (the creditor portal's front page) -----------------------------

@bp.post("/tableros/institucion/<int:institution_id>/fotografia")
@auth.permission_required("institutions.manage")
def snapshot_aging(institution_id: int):
    """An administrator takes today's aging snapshot now instead of waiting for the day's."""
    with rpc() as proxy:
        proxy.portfolio.snapshot_aging(institution_id)
    return redirect(url_for(".institution", institution_id=institution_id, done="snapshot"))


def _institutions_for_filter(proxy) -> list[dict]:
    return proxy.portfolio.list_institutions()


@bp.get("/tableros/institucion")
@bp.get("/portal", endpoint="portal")
@auth.permission_required("reports.view")
def institution():
    institution_id = None
    errors = {}
    try:
        institution_id = reporting.institution_arg(request.args)
    except InvalidInput as exc:
        errors = exc.fields
    with rpc() as proxy:
        institutions = _institutions_for_filter(proxy)
        if institution_id is None and len(institutions) == 1:
            institution_id = institutions[0]["id"]   # a creditor: its own, named
        data = reporting.overview(proxy, institution_id, reporting.today())
    chosen = next((i for i in institutions if i["id"] == institution_id), None)
    return render_template("reports/institution.html", data=data, charts=_chart_data(data),
                           institutions=institutions, chosen=chosen, errors=errors,
                           portal=request.endpoint == "dashboards_ui.portal",
                           snapshot_taken=request.args.get("done") == "snapshot",
                           # the documents area's shared list, when that feature is installed
                           shared_endpoints=set(current_app.view_functions),
                           reports=reporting.REPORTS), 422 if errors else 200


# --- the supervisor's day ---------------------------------------------------------------------

def _hours_chart(day_data: dict) -> dict:
    return {"labels": [f"{h['hour']:02d}:00" for h in day_data["hours"]],
            "activities": [h["activities"] for h in day_data["hours"]],
            "label": _("Gestiones por hora")}


@bp.get("/tableros/supervisor")
@auth.permission_required("reports.view")
def supervisor():
    errors, query = {}, None
    try:
        query = reporting.day_query(request.args)
    except InvalidInput as exc:
        errors = exc.fields
        query = {"day": reporting.today().isoformat(), "team_id": None, "institution_id": None,
                 "time_zone": str(timefmt.reader_zone())}
    with rpc() as proxy:
        try:
            data = proxy.activities.supervisor_day(query)
        except InvalidInput as exc:
            errors = exc.fields
            query["team_id"] = None
            data = proxy.activities.supervisor_day(query)
        names = reporting.Names()
        teams = proxy.auth.list_teams()
        for team in teams:
            names.agents[team["supervisor_id"]] = team.get("supervisor") or ""
            names.agents.update({m["id"]: m["display_name"] for m in team["members"]})
    live = query["day"] == reporting.today().isoformat()
    stream = None
    if live:
        args = {k: v for k, v in query.items() if k in ("team_id", "institution_id") and v}
        stream = url_for(".supervisor_events", **args)
    return render_template("reports/supervisor.html", data=data, query=query, teams=teams,
                           agents=names.agents, errors=errors, live=live, stream=stream,
                           hours=_hours_chart(data)), 422 if errors else 200


@bp.get("/tableros/supervisor/eventos")
@auth.permission_required("reports.view")
def supervisor_events():
    """Today's counters as Server-Sent Events: now, then after every burst of activity
    events in the viewer's institutions (the service scopes what the counters count)."""
    query = {**reporting.day_query(request.args), "day": reporting.today().isoformat()}
    user = g.user
    # the summary's institutions: None for every institution, else the list
    allowed = None if user.get("institutions") is None else set(user["institutions"])
    pool = current_app.extensions["recaudo.rpc"]
    context = {"identity": g.identity_token, "request_id": g.get("request_id")}

    def counters():
        with pool.proxy(context) as proxy:
            return proxy.activities.supervisor_day(query)

    subscription = events.Subscription(
        "activities", LIVE_EVENTS,
        lambda payload: allowed is None or payload.get("institution_id") in allowed)
    try:
        first = counters()
    except BaseException:
        subscription.close()
        raise

    def stream():
        try:
            yield events.sse("counters", first)
            for item in subscription.events():
                if item is None:
                    yield ": keep-alive\n\n"
                    continue
                if subscription.received:      # more of the burst waiting: count once
                    continue
                try:
                    yield events.sse("counters", counters())
                except DomainError:            # the identity expired: the browser reconnects
                    return
        finally:
            subscription.close()

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
