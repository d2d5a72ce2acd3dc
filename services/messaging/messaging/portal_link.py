"""The debtor portal's personal link sent by SMS: a short text of messaging's own (no
accents and a short sentence, so with the link it fits one GSM-7 segment where the
gateway's address is not too long), and the link's token masked wherever the message is
shown or logged. Auth keeps only the token's hash; the conversation view, the contact log
and this service's logs must not hand out a usable link either. The row keeps the text
the gateway or the mail server is to be handed until it has been (a retry needs it); the
transaction that records the hand-over rewrites it masked (``masked_sql``), so no usable
token stays at rest."""
from __future__ import annotations

from html import escape

from sqlalchemy import func

from recaudo_common.config import settings

from .contracts import PORTAL_TOKEN, mask_portal_links

TEXTS = {"es": "Consulte su cuenta: {url} (liga personal de un solo uso)",
         "en": "Your account: {url} (personal link, single use)"}


def text(language: str, url: str) -> str:
    return TEXTS.get(language, TEXTS["es"]).format(url=url)


#: every portal link's token hidden (the address kept): what is shown and logged
mask = mask_portal_links


def masked_sql(column):
    """``mask`` as SQL over a text column, for the set-based update that records a batch's
    hand-over (the same pattern: a test checks both agree)."""
    return func.regexp_replace(column, PORTAL_TOKEN.pattern, r"\1***", "g")


def url(institution_id: int, token: str) -> str:
    """The link as the gateway's portal answers it (``/mi-cuenta/<institution>/<token>``)."""
    return f"{settings().site_url}/mi-cuenta/{institution_id}/{token}"


def campaign_key(campaign_id: int, run_id: int, debtor_id: int) -> str:
    """Auth's key for a campaign run's link to a debtor: one link per run and debtor (a
    debtor with two accounts picked gets the same link in both messages)."""
    return f"campaign-{campaign_id}-run-{run_id}-debtor-{debtor_id}"


def rendered_with_link(rendered: dict, url_: str) -> dict:
    """A campaign email's text and HTML, each with the link (``with_link``)."""
    html = rendered.get("html") or ""
    if html and url_ not in html:
        html += f'\n<p><a href="{escape(url_)}">{escape(url_)}</a></p>'
    return {**rendered, "text": with_link(rendered["text"], url_), "html": html}


def with_link(text_: str, link: str | None) -> str:
    """A campaign's text with the debtor's link: where the template prints it
    (``{{ portal_link }}``), or else on a line of its own at the end."""
    if not link or link in text_:
        return text_
    return f"{text_.rstrip()}\n{link}"
