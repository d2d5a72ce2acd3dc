"""The debtor portal's personal link sent by SMS: a short text of messaging's own (no
accents and a short sentence, so with the link it fits one GSM-7 segment where the
gateway's address is not too long), and the link's token masked wherever the message is
shown or logged. Auth keeps only the token's hash; the conversation view, the contact log
and this service's logs must not hand out a usable link either (the row keeps the text
the gateway is handed, as an email keeps its body)."""
from __future__ import annotations

from .contracts import mask_portal_links

TEXTS = {"es": "Consulte su cuenta: {url} (liga personal de un solo uso)",
         "en": "Your account: {url} (personal link, single use)"}


def text(language: str, url: str) -> str:
    return TEXTS.get(language, TEXTS["es"]).format(url=url)


#: every portal link's token hidden (the address kept): what is shown and logged
mask = mask_portal_links
