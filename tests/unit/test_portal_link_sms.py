"""The debtor portal's link by SMS (messaging.portal_link): its own short text fits one
GSM-7 segment with a link of ordinary length, and its token is masked wherever a message
is shown (the conversation's schema included)."""
from messaging import portal_link, sms
from messaging.contracts import SmsOut

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
