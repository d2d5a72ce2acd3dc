"""The demo's documents (``recaudo seed-live``): a few dozen PDFs and images in the folders of
the debtors each demo collector sees first, so the "Documentos" tab of a debtor with history
has something to open, preview and share.

Uploaded as the collector themself (their signed identity from ``auth.identity_for``, as the
reports seed does), the way every client uploads - ``request_upload``, a multipart POST of
the bytes to the presigned form, ``complete_upload`` - so the scope check, the size and MD5
check, the sniffing of the bytes and the ``document_added`` event all apply. The files are
drawn in code (reportlab for the PDFs, Pillow - reportlab's own dependency - for the PNG and
JPEG images), a few kilobytes each.

The debtors are the first ones of the collector's "Cartera" (its default order) whose
accounts have history; a payment receipt is attached to the call where the debtor said they
had paid, and a statement to an open dispute. Idempotent: an institution whose folders hold a
demo document uploaded by its collector is left alone.
"""
from __future__ import annotations

import hashlib
import io
import mimetypes
from datetime import date
from decimal import Decimal

import requests
from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from recaudo_common import demo
from recaudo_common.config import settings
from recaudo_common.db import make_engine
from recaudo_common.identity import IDENTITY_KEY

from .models import Document, Version

#: debtors per institution that get documents
DEBTORS = 6
#: how many of the collector's accounts are looked at for history before settling for others
CANDIDATES = 60
#: (file name, category, what to draw); the first debtor gets them all, the others two each
FILES = (
    ("Contrato de apertura.pdf", "contrato", "contract"),
    ("Identificación oficial.jpg", "identificacion", "id_card"),
    ("Comprobante de pago.png", "comprobante_pago", "receipt"),
    ("Carta de requerimiento.pdf", "carta", "letter"),
    ("Comprobante de domicilio.jpg", "otro", "utility_bill"),
)
#: attached to an open dispute of the account
DISPUTE_FILE = ("Estado de cuenta (aclaración).pdf", "otro", "statement")
NAMES = tuple(f[0] for f in FILES) + (DISPUTE_FILE[0],)
TIMEOUT = 30


def collector_of(institution_id: int) -> str:
    """The demo collector whose folders get the institution's documents (gestor1 first)."""
    return next((name for name, insts in demo.GESTOR_INSTITUTIONS.items()
                 if institution_id in insts), next(iter(demo.GESTOR_INSTITUTIONS)))


def seed_live(proxy, institutions: tuple[int, ...] | None = None,
              nameko_config: dict | None = None) -> dict:
    """Documents uploaded per institution (``{institution: count}``); ``proxy``: started
    proxies as the platform (used to ask for each collector's identity); ``nameko_config``:
    the broker the collector's own proxy uses (the settings' by default)."""
    institutions = institutions or tuple(i for i, _, _ in demo.INSTITUTIONS)
    engine = make_engine(pool_size=1)
    made = {}
    try:
        for institution_id in institutions:
            user_id = demo.USER_IDS[collector_of(institution_id)]
            if _seeded(engine, institution_id, user_id):
                continue
            identity = proxy.auth.identity_for(user_id)["identity"]
            with ClusterRpcProxy(nameko_config or settings().nameko,
                                 context_data={IDENTITY_KEY: identity}, timeout=120) as collector:
                made[institution_id] = _Folders(collector, institution_id, user_id).fill()
    finally:
        engine.dispose()
    return made


def _seeded(engine, institution_id: int, user_id: int) -> bool:
    """Whether the institution's folders already hold a demo document by its collector."""
    with Session(engine) as session:
        return session.execute(
            select(Document.id).join(Version, Version.document_id == Document.id)
            .where(Document.institution_id == institution_id, Version.uploaded_by == user_id,
                   func.lower(Document.name).in_([n.lower() for n in NAMES])).limit(1)
        ).first() is not None


class _Folders:
    """One institution's demo documents, uploaded as its collector."""

    def __init__(self, rpc, institution_id: int, user_id: int):
        self.rpc, self.institution_id, self.user_id = rpc, institution_id, user_id
        self.http = requests.Session()

    def fill(self) -> int:
        count = 0
        for index, (account, history) in enumerate(self._accounts()):
            files = FILES if index == 0 else [FILES[(index * 2 + k) % len(FILES)] for k in (0, 1)]
            for name, category, drawing in files:
                activity_id = None
                if category == "comprobante_pago":
                    activity_id = next((a["id"] for a in history
                                        if a.get("result_code") == "YAPAGO"), None)
                self._upload(account, name, category, _draw(drawing, account),
                             activity_id=activity_id)
                count += 1
            dispute = next((d for d in self.rpc.activities.account_disputes(account["account_id"])
                            if d["state"] == "open"), None)
            if dispute:
                name, category, drawing = DISPUTE_FILE
                self._upload(account, name, category, _draw(drawing, account),
                             dispute_id=dispute["id"])
                count += 1
        return count

    def _accounts(self) -> list[tuple[dict, list[dict]]]:
        """The first DEBTORS debtors (one account each) of the collector's cartera, those
        whose account has history first, with that history (newest first)."""
        rows = self.rpc.portfolio.list_accounts({
            "institution_id": self.institution_id, "assigned_agent_id": self.user_id,
            "per_page": CANDIDATES})["items"]
        worked, others, debtors = [], [], set()
        for row in rows:
            if row["debtor_id"] in debtors:
                continue
            debtors.add(row["debtor_id"])
            history = self.rpc.activities.account_history(row["account_id"],
                                                          {"per_page": 50})["items"]
            (worked if history else others).append((row, history))
            if len(worked) >= DEBTORS:
                break
        return (worked + others)[:DEBTORS]

    def _upload(self, account: dict, name: str, category: str, data: bytes,
                activity_id: int | None = None, dispute_id: int | None = None) -> dict:
        """request_upload -> POST to the presigned form -> complete_upload, as a browser."""
        ticket = self.rpc.documents.request_upload({
            "debtor_id": account["debtor_id"], "account_id": account["account_id"],
            "category": category, "filename": name, "size": len(data),
            "md5": hashlib.md5(data).hexdigest(), "activity_id": activity_id,
            "dispute_id": dispute_id})
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        response = self.http.post(ticket["url"], data=ticket["fields"],
                                  files={"file": (name, data, content_type)}, timeout=TIMEOUT)
        response.raise_for_status()
        return self.rpc.documents.complete_upload(ticket["upload_id"])


# --- the files, drawn -------------------------------------------------------------------------

def _money(value) -> str:
    return f"${Decimal(str(value or 0)):,.2f}"


def _draw(kind: str, account: dict) -> bytes:
    return {"contract": _contract, "letter": _letter, "statement": _statement,
            "id_card": _id_card, "receipt": _receipt, "utility_bill": _utility_bill}[kind](account)


def _pdf(title: str, account: dict, lines: list[str]) -> bytes:
    """A one-page letter-size PDF (reportlab; ``invariant`` keeps the bytes reproducible)."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=letter, invariant=1)
    pdf.setTitle(title)
    width, height = letter
    pdf.setFont("Helvetica-Bold", 11)
    pdf.drawString(72, height - 72, account.get("institution") or "")
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(72, height - 110, title)
    pdf.setFont("Helvetica", 11)
    y = height - 145
    for line in [f"Titular: {account['name']}", f"Cuenta: {account['account_number']}", ""] + lines:
        pdf.drawString(72, y, line)
        y -= 18
    pdf.setFont("Helvetica-Oblique", 8)
    pdf.drawString(72, 54, "Documento de demostración generado por Recaudo.")
    pdf.showPage()
    pdf.save()
    return out.getvalue()


def _contract(account: dict) -> bytes:
    return _pdf("Contrato de apertura de crédito", account, [
        f"Producto: {account.get('currency', 'MXN')} - crédito al consumo.",
        "El acreditado se obliga a pagar las mensualidades en las fechas pactadas.",
        "Las partes se someten a los tribunales de la Ciudad de México.",
        "", "Firma del acreditado: ______________________"])


def _letter(account: dict) -> bytes:
    return _pdf("Requerimiento de pago", account, [
        f"Saldo vencido: {_money(account.get('overdue_amount'))} "
        f"({account.get('days_past_due', 0)} días de atraso).",
        "Le solicitamos regularizar su adeudo o comunicarse con nosotros",
        "para convenir una forma de pago.", "", "Atentamente,", "Área de cobranza"])


def _statement(account: dict) -> bytes:
    return _pdf("Estado de cuenta", account, [
        f"Saldo total: {_money(account.get('balance'))}",
        f"Saldo vencido: {_money(account.get('overdue_amount'))}",
        f"Días de atraso: {account.get('days_past_due', 0)}",
        "", "Adjunto a la aclaración del titular para su revisión."])


def _image(size: tuple[int, int], color: str, lines: list[str], fmt: str) -> bytes:
    """A small image with a few lines of text (Pillow's built-in font)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=15)
    draw.rectangle((6, 6, size[0] - 7, size[1] - 7), outline="#33415c", width=2)
    y = 20
    for line in lines:
        draw.text((20, y), line, fill="#1b1f2a", font=font)
        y += 22
    out = io.BytesIO()
    image.save(out, format=fmt, **({"quality": 80} if fmt == "JPEG" else {"optimize": True}))
    return out.getvalue()


def _id_card(account: dict) -> bytes:
    return _image((420, 260), "#e8eef7", [
        "IDENTIFICACION OFICIAL - MUESTRA", "", f"NOMBRE: {account['name']}",
        f"CLIENTE: {account.get('customer_number') or ''}", "", "Copia para expediente de cobranza"],
        "JPEG")


def _receipt(account: dict) -> bytes:
    return _image((360, 240), "#ffffff", [
        "COMPROBANTE DE PAGO", f"Fecha: {date.today():%d/%m/%Y}",
        f"Cuenta: {account['account_number']}",
        f"Importe: {_money(min(Decimal(str(account.get('overdue_amount') or 0)), Decimal(1500)))}",
        "Referencia: DEMO-" + str(account["account_id"])], "PNG")


def _utility_bill(account: dict) -> bytes:
    return _image((400, 240), "#fdf6e3", [
        "RECIBO DE LUZ - COMPROBANTE DE DOMICILIO", "", f"{account['name']}",
        "Periodo: bimestre anterior", "Copia para expediente de cobranza"], "JPEG")
