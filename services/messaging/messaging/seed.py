"""Demo data of the messaging service (``recaudo seed`` in demo mode), idempotent.

BANCOMER (institution 1) gets a mailbox on the local runner's dovecot and SMTP sink
(``deploy/runner.py``: user cobranza@recaudo.demo, password recaudo-demo), an
account-number pattern, a fax gateway domain, two letters in Spanish and English, and SMS
through the local runner's Kannel (``messaging/kannel.py``) with a short SMS template.
A few demo messages are dropped into the dovecot spool, which the local IMAP server
APPENDs when it starts: two from demo debtors' addresses (matched by sender), one
naming an account number (matched by the pattern) and one nobody's (triage).
"""
from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from recaudo_common.config import settings
from recaudo_common.db import make_engine

from . import crypto, kannel
from .models import InstitutionSettings, Mailbox, MatchPattern, SmsSettings, Template

DEMO_USER, DEMO_PASSWORD = "cobranza@recaudo.demo", "recaudo-demo"
INSTITUTION = 1
ROOT = Path(__file__).resolve().parents[3]

LETTERS = [
    {"name": "Recordatorio de pago",
     "subject_es": "Recordatorio de pago - cuenta {{ account.account_number }}",
     "text_es": "Estimado(a) {{ debtor.name }}:\n\nLe recordamos que su cuenta "
                "{{ account.account_number }} ({{ account.product }}) tiene un saldo vencido de "
                "${{ account.overdue_amount|money }} {{ account.currency }} con "
                "{{ account.days_past_due }} días de atraso.\n\nPara cualquier aclaración "
                "responda a este correo.\n\nAtentamente,\n{{ institution.name }}",
     "subject_en": "Payment reminder - account {{ account.account_number }}",
     "text_en": "Dear {{ debtor.name }},\n\nYour account {{ account.account_number }} has an "
                "overdue balance of ${{ account.overdue_amount|money }} "
                "{{ account.currency }} ({{ account.days_past_due }} days past due).\n\n"
                "Sincerely,\n{{ institution.name }}"},
    {"name": "Carta de cobranza",
     "subject_es": "Aviso de adeudo - {{ debtor.customer_number }}",
     "text_es": "{{ debtor.name }}\nCliente {{ debtor.customer_number }}\n\nPor medio de la "
                "presente le informamos que su cuenta {{ account.account_number }} presenta un "
                "saldo total de ${{ account.balance|money }} {{ account.currency }}.\n\nLe "
                "invitamos a regularizar su situación a la brevedad.\n\n{{ institution.name }}"},
    {"name": "SMS recordatorio",
     "subject_es": "Recordatorio por SMS",
     "text_es": "{{ institution.name }}: {{ debtor.name }}, su cuenta {{ account.account_number }}"
                " tiene un saldo vencido de ${{ account.overdue_amount|money }}. Responda BAJA"
                " para no recibir SMS.",
     "subject_en": "SMS reminder",
     "text_en": "{{ institution.name }}: {{ debtor.name }}, your account "
                "{{ account.account_number }} is ${{ account.overdue_amount|money }} overdue. "
                "Reply STOP to opt out."},
]
DEMO_SMS_SENDER = "30303"


def seed_demo() -> None:
    engine = make_engine(pool_size=1)
    cfg = settings()
    try:
        with Session(engine) as session, session.begin():
            mailbox = session.execute(select(Mailbox).where(
                Mailbox.institution_id == INSTITUTION, Mailbox.name == "Cobranza demo")
            ).scalar_one_or_none()
            if mailbox is None:
                mailbox = Mailbox(
                    institution_id=INSTITUTION, name="Cobranza demo", address=DEMO_USER,
                    imap_host="127.0.0.1", imap_port=cfg.local_imap_port, imap_tls=False,
                    imap_user=DEMO_USER, imap_password=crypto.encrypt(DEMO_PASSWORD),
                    smtp_host="127.0.0.1", smtp_port=cfg.local_smtp_port, smtp_security="none")
                session.add(mailbox)
                session.flush()
                _drop_demo_messages(session, cfg)
            if session.get(InstitutionSettings, INSTITUTION) is None:
                session.add(InstitutionSettings(institution_id=INSTITUTION,
                                                fax_domain="fax.recaudo.demo",
                                                default_mailbox_id=mailbox.id))
            if not session.execute(select(MatchPattern.id).where(
                    MatchPattern.institution_id == INSTITUTION)).first():
                session.add(MatchPattern(institution_id=INSTITUTION, name="Número de cuenta",
                                         regex=r"[Cc]uenta\s*(?:No\.?|núm\.?|número)?\s*:?\s*"
                                               r"([0-9]{8,20})", target="account_number"))
            if session.get(SmsSettings, INSTITUTION) is None:
                session.add(SmsSettings(
                    institution_id=INSTITUTION, sender_id=DEMO_SMS_SENDER,
                    gateway_url=f"http://127.0.0.1:{cfg.local_kannel_port}/cgi-bin/sendsms",
                    username=kannel.USER, password=crypto.encrypt(kannel.PASSWORD),
                    inbound_token=crypto.encrypt(kannel.TOKEN)))
            for letter in LETTERS:
                if not session.execute(select(Template.id).where(
                        Template.institution_id == INSTITUTION,
                        Template.name == letter["name"])).first():
                    session.add(Template(institution_id=INSTITUTION, **letter))
    finally:
        engine.dispose()


def _drop_demo_messages(session, cfg) -> None:
    """Demo mail into the local IMAP server's spool (read-only look at two demo debtors'
    addresses and an account number: demo data only, the portfolio's seed ran first)."""
    rows = session.execute(text(
        "SELECT e.address, d.name, a.account_number FROM portfolio.emails e"
        " JOIN portfolio.debtors d ON d.id = e.debtor_id"
        " JOIN portfolio.accounts a ON a.debtor_id = d.id"
        " WHERE d.institution_id = :i ORDER BY d.id LIMIT 3"), {"i": INSTITUTION}).all()
    spool = (ROOT / cfg.var_dir / "mail" / "imap" / "spool" / DEMO_USER)
    spool.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    messages = []
    if len(rows) >= 3:
        messages += [
            (f"{rows[0].name} <{rows[0].address}>", "Comprobante de pago",
             "Buenas tardes, ya realicé el pago de este mes. Saludos."),
            (f"{rows[1].name} <{rows[1].address}>", "Solicito convenio",
             "Quisiera saber si puedo pagar en parcialidades."),
            ("Contabilidad <pagos@empresa-demo.mx>", f"Pago de la cuenta {rows[2].account_number}",
             "Adjuntamos la referencia del depósito de la cuenta indicada."),
        ]
    messages.append(("Desconocido <alguien@correo-demo.mx>", "Consulta",
                     "¿Me pueden llamar? No recuerdo mi número de cliente."))
    for n, (sender, subject, body) in enumerate(messages):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, DEMO_USER, subject
        msg["Date"] = format_datetime(now - timedelta(hours=len(messages) - n))
        msg["Message-ID"] = f"<demo-{n}-{int(now.timestamp())}@recaudo.demo>"
        msg.set_content(body)
        (spool / f"{n:03d}.eml").write_bytes(msg.as_bytes())
