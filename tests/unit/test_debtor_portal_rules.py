"""The debtor principal of a portal session (recaudo_common.identity) and the portal link
an email template may print (messaging): what they allow and refuse, without services."""
from __future__ import annotations

from datetime import date

import pytest

from messaging import templates
from messaging.contracts import SendEmail
from recaudo_common.errors import InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity, sign, verify
from recaudo_common.validation import load

LINK = "https://recaudo.example/mi-cuenta/1/pl_" + "a" * 43


def test_a_debtor_principal_survives_signing_and_reaches_only_its_debtor():
    debtor = verify(sign(Identity.debtor(1, 42, "en")))
    assert (debtor.debtor_institution_id, debtor.debtor_id, debtor.language) == (1, 42, "en")
    assert debtor.institutions == () and not debtor.has("portfolio.read")
    assert debtor.require_debtor() is debtor
    debtor.require_own(1, 42)
    for institution_id, debtor_id in ((1, 43), (2, 42)):
        with pytest.raises(NotFound):
            debtor.require_own(institution_id, debtor_id)
    with pytest.raises(NotFound):
        debtor.require_institution(1)                 # no staff scope at all


def test_staff_and_the_platform_are_no_debtor():
    staff = Identity(user_id=3, username="gestor1", profile="Gestor",
                     permissions=frozenset({"portfolio.read", "activities.log"}), institutions=(1,))
    for identity in (staff, Identity.system("auth")):
        with pytest.raises(PermissionDenied):
            identity.require_debtor()


def test_a_template_may_print_the_portal_link_only_in_the_email_that_sends_one():
    source = {"subject_es": "Su cuenta", "text_es": "Entre aquí: {{ portal_link }}"}
    templates.validate_sources(source)                # a known variable
    ctx = templates.context({}, {}, {"name": "X"}, date(2026, 1, 1), LINK)
    assert templates.render(source, "es", ctx)["text"] == f"Entre aquí: {LINK}"
    with pytest.raises(InvalidInput):                 # undefined elsewhere: refused, not blank
        templates.render(source, "es", templates.context({}, {}, {}, date(2026, 1, 1)))


@pytest.mark.parametrize("link", ["https://evil.example/phish", LINK.replace("pl_", "xx_"),
                                  LINK + " más texto"])
def test_an_email_carries_only_a_portal_link(link):
    with pytest.raises(InvalidInput) as refused:
        load(SendEmail(), {"account_id": 1, "template_id": 1, "to": "a@b.mx",
                           "portal_link": link})
    assert "portal_link" in refused.value.fields
    assert load(SendEmail(), {"account_id": 1, "template_id": 1, "to": "a@b.mx",
                              "portal_link": LINK})["portal_link"] == LINK
