"""Letters: Jinja templates rendered in a sandbox over the debtor's and account's fields.

A template sees three names — ``debtor``, ``account`` and ``institution`` — each a plain
dict of whitelisted fields, plus ``today``; nothing else (no attributes of Python
objects, no globals). Undefined names or fields are errors (StrictUndefined), found
at save time by walking the template's syntax tree and by a trial render over a
sample, and at preview/send by the render itself, each naming the template field.
The same text renders to the email's text part, its HTML part (escaped paragraphs
when the template has no HTML of its own) and the fax's PDF letter.
"""
from __future__ import annotations

import html
import io
from datetime import date
from decimal import Decimal

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment

from recaudo_common.errors import InvalidInput

#: what a template may use: name -> the fields it exposes
FIELDS = {
    "debtor": ("name", "customer_number", "kind", "tax_id"),
    "account": ("account_number", "product", "currency", "balance", "overdue_amount",
                "original_amount", "days_past_due", "stage", "opened_on"),
    "institution": ("name", "code"),
    "today": None,
    #: the debtor portal's personal link, only in the email that sends one
    "portal_link": None,
}
SOURCES = ("subject_es", "text_es", "html_es", "subject_en", "text_en", "html_en")
MAX_OUTPUT = 200_000


def money(value) -> str:
    """1234.5 -> 1,234.50 (the way statements print amounts)."""
    try:
        return f"{Decimal(str(value)):,.2f}"
    except Exception:  # noqa: BLE001 - a template error, not a crash
        return str(value)


def _env(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=autoescape,
                               trim_blocks=True, lstrip_blocks=True)
    env.globals = {}   # no range(), lipsum(), dict(), cycler...
    env.filters["money"] = money
    return env


_TEXT = _env(False)
_HTML = _env(True)


def _check_names(source: str, env: SandboxedEnvironment) -> list[str]:
    """Problems with the names and fields a template source uses (without rendering)."""
    tree = env.parse(source)
    problems = []
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name not in FIELDS and name.name not in assigned:
            problems.append(f"Variable desconocida: {name.name}")
    for attr in tree.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name in FIELDS:
            allowed = FIELDS[attr.node.name] or ()
            if attr.attr not in allowed:
                problems.append(f"Campo desconocido: {attr.node.name}.{attr.attr}")
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.node, nodes.Name) and item.node.name in FIELDS \
                and isinstance(item.arg, nodes.Const):
            if item.arg.value not in (FIELDS[item.node.name] or ()):
                problems.append(f"Campo desconocido: {item.node.name}[{item.arg.value!r}]")
    return sorted(set(problems))


SAMPLE = {
    "debtor": {"name": "JUAN PÉREZ LÓPEZ", "customer_number": "C-0001", "kind": "person",
               "tax_id": "PELJ800101AAA"},
    "account": {"account_number": "1234567890", "product": "Tarjeta", "currency": "MXN",
                "balance": Decimal("15230.50"), "overdue_amount": Decimal("3200.00"),
                "original_amount": Decimal("20000.00"), "days_past_due": 45,
                "stage": "delinquent", "opened_on": date(2024, 1, 15)},
    "institution": {"name": "BANCO EJEMPLO", "code": "EJEMPLO"},
    "today": date(2026, 1, 1),
    "portal_link": "https://recaudo.example/mi-cuenta/1/pl_ejemplo",
}


def validate_sources(data: dict) -> None:
    """Raise InvalidInput naming each template field that is not a valid template."""
    problems: dict[str, list[str]] = {}
    for field in SOURCES:
        source = data.get(field) or ""
        if not source:
            continue
        env = _HTML if field.startswith("html") else _TEXT
        try:
            found = _check_names(source, env)
            if not found:
                env.from_string(source).render(SAMPLE)
        except TemplateError as exc:
            found = [f"Plantilla inválida: {exc.message or exc}"]
        if found:
            problems[field] = found
    if problems:
        raise InvalidInput("Plantilla inválida", problems)


def context(debtor: dict, account: dict, institution: dict, today: date,
            portal_link: str | None = None) -> dict:
    """Only the whitelisted fields, copied (the template never sees the RPC answers);
    ``portal_link`` only when the email sends one (elsewhere it is undefined: an error)."""
    def pick(source, name):
        return {k: (source or {}).get(k) for k in FIELDS[name]}
    ctx = {"debtor": pick(debtor, "debtor"), "account": pick(account, "account"),
           "institution": pick(institution, "institution"), "today": today}
    if portal_link:
        ctx["portal_link"] = portal_link
    return ctx


def _render(env, field: str, source: str, ctx: dict) -> str:
    try:
        out = env.from_string(source).render(ctx)
    except TemplateError as exc:
        raise InvalidInput("La plantilla no se pudo llenar",
                           {field: [f"{type(exc).__name__}: {exc.message or exc}"]}) from None
    if len(out) > MAX_OUTPUT:
        raise InvalidInput("Texto demasiado largo", {field: ["El texto resultante es demasiado largo"]})
    return out


def text_to_html(body: str) -> str:
    paragraphs = [p for p in body.replace("\r\n", "\n").split("\n\n") if p.strip()]
    inner = "".join("<p>" + html.escape(p).replace("\n", "<br>\n") + "</p>\n" for p in paragraphs)
    return f"<!doctype html>\n<html><body>\n{inner}</body></html>\n"


def render(template: dict, language: str, ctx: dict) -> dict:
    """Subject, text and HTML of ``template`` (a dict of its sources) in ``language``
    (English falls back to Spanish where the English version is empty)."""
    lang = language if language in ("es", "en") and template.get(f"text_{language}") else "es"
    subject = _render(_TEXT, f"subject_{lang}", template[f"subject_{lang}"], ctx)
    text = _render(_TEXT, f"text_{lang}", template[f"text_{lang}"], ctx)
    source_html = template.get(f"html_{lang}") or ""
    body_html = _render(_HTML, f"html_{lang}", source_html, ctx) if source_html \
        else text_to_html(text)
    return {"subject": " ".join(subject.split())[:300], "text": text, "html": body_html,
            "language": lang}


def render_pdf(subject: str, text: str, institution: str) -> bytes:
    """The letter as a PDF (what the fax gateway transmits)."""
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=letter, leftMargin=2.5 * cm, rightMargin=2.5 * cm,
                            topMargin=2.5 * cm, bottomMargin=2.5 * cm, title=subject,
                            author=institution, creator="Recaudo")
    styles = getSampleStyleSheet()
    story = [Paragraph(html.escape(institution), styles["Title"]),
             Paragraph(html.escape(subject), styles["Heading2"]), Spacer(1, 12)]
    for paragraph in text.replace("\r\n", "\n").split("\n\n"):
        if paragraph.strip():
            story.append(Paragraph(html.escape(paragraph).replace("\n", "<br/>"),
                                   styles["BodyText"]))
            story.append(Spacer(1, 6))
    doc.build(story)
    return buffer.getvalue()


def postal_address(address: dict) -> str:
    """A portfolio address as one line for a letter's envelope and its activity."""
    parts = (address.get("street"), address.get("neighborhood"), address.get("municipality"),
             address.get("state"),
             f"C.P. {address['postal_code']}" if address.get("postal_code") else None)
    return ", ".join(p for p in parts if p)[:300]
