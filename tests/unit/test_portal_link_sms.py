"""The debtor portal's link by SMS (messaging.portal_link): its own short text fits one
GSM-7 segment with a link of ordinary length, and its token is masked wherever a message
is shown (the conversation's schema included); a campaign's message carries the link where
its template prints it or at the end; auth's token for a platform key is fixed per key."""
import pytest
from marshmallow import ValidationError

from auth import portal
from messaging import portal_link, sms
from messaging.contracts import PORTAL_LINK, SendCampaignMessage, SmsOut

TOKEN = "pl_" + "x" * 43   # auth's tokens: pl_ + 32 random bytes, URL-safe base64


def test_the_text_fits_one_gsm7_segment_in_both_languages():
    url = f"https://cobranza.agencia-ejemplo.com.mx/mi-cuenta/12/{TOKEN}"
    for language in ("es", "en"):
        length = sms.segments(portal_link.text(language, url))
        assert (length["encoding"], length["segments"]) == ("gsm7", 1)
    assert portal_link.text("en", url).startswith("Your account: ")
    assert portal_link.text("fr", url) == portal_link.text("es", url)


def test_the_token_is_masked_and_masking_twice_changes_nothing():
    text = f"Vea https://r.example/mi-cuenta/3/{TOKEN} y https://r.example/mi-cuenta/4/pl_Ab-_9"
    masked = portal_link.mask(text)
    assert masked == "Vea https://r.example/mi-cuenta/3/pl_*** y https://r.example/mi-cuenta/4/pl_***"
    assert portal_link.mask(masked) == masked
    assert portal_link.mask("sin liga") == "sin liga"


def test_the_conversation_never_shows_a_token():
    assert SmsOut(only=("body",)).dump({"body": f"/mi-cuenta/1/{TOKEN}"}) == {
        "body": "/mi-cuenta/1/pl_***"}


def test_a_campaign_message_carries_the_link_once():
    url = f"https://r.example/mi-cuenta/3/{TOKEN}"
    assert portal_link.with_link("Pague aqui: " + url, url) == "Pague aqui: " + url
    assert portal_link.with_link("Su pago vence pronto.\n", url) == f"Su pago vence pronto.\n{url}"
    assert portal_link.with_link("Sin liga", None) == "Sin liga"
    both = portal_link.rendered_with_link({"text": "Hola", "html": "<p>Hola</p>"}, url)
    assert both["text"] == f"Hola\n{url}" and f'<a href="{url}">' in both["html"]
    assert portal_link.campaign_key(4, 17, 900) == "campaign-4-run-17-debtor-900"


def test_a_link_is_under_the_site_s_address(monkeypatch):
    monkeypatch.setenv("RECAUDO_PUBLIC_URL", "https://cobranza.example.mx/")
    from recaudo_common.config import settings
    settings.cache_clear()
    try:
        assert portal_link.url(12, TOKEN) == f"https://cobranza.example.mx/mi-cuenta/12/{TOKEN}"
    finally:
        monkeypatch.delenv("RECAUDO_PUBLIC_URL")
        settings.cache_clear()


def test_a_platform_key_s_token_is_fixed_unguessable_and_per_debtor():
    token = portal.keyed_token(900, "campaign-4-run-17-debtor-900")
    assert token == portal.keyed_token(900, "campaign-4-run-17-debtor-900")
    assert token != portal.keyed_token(901, "campaign-4-run-17-debtor-900")
    assert token != portal.keyed_token(900, "campaign-4-run-18-debtor-900")
    assert token.startswith("pl_") and len(token) == 46
    PORTAL_LINK(f"https://r.example/mi-cuenta/3/{token}")   # messaging takes it


def test_a_letter_carries_no_link_and_a_link_needs_its_run():
    base = {"account_id": 1, "template_id": 2, "campaign_id": 3, "idempotency_key": "k"}
    assert SendCampaignMessage().load({**base, "channel": "sms", "portal_link": True,
                                       "run_id": 5})["portal_link"] is True
    for change, field in (({"channel": "letter", "portal_link": True, "run_id": 5}, "portal_link"),
                          ({"channel": "email", "portal_link": True}, "run_id"),
                          ({"channel": "fax"}, "channel")):
        with pytest.raises(ValidationError) as err:
            SendCampaignMessage().load({**base, **change})
        assert set(err.value.messages) == {field}
