"""Demo portfolio: three institutions with their statuses and import layouts, and about
5,000 realistic Mexican debtors (Faker ``es_MX``, fixed seed) with accounts, phones,
emails, addresses, instalment schedules and payments. Loaded with COPY, idempotently
(an institution that already has debtors is left alone)."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from faker import Faker
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from recaudo_common import demo
from recaudo_common.db import make_engine

from . import aging
from .contracts import MANDATORY, layout_problems
from .models import ImportLayout, Institution, Status

#: (code, name) of the statuses every demo institution starts with
STATUSES = (
    ("NUEVA", "Nueva asignación"), ("EN_GESTION", "En gestión"),
    ("PROMESA", "Con promesa de pago"), ("CONVENIO", "Convenio de pago"),
    ("ACLARACION", "En aclaración"), ("ILOCALIZABLE", "Ilocalizable"),
    ("DEMANDA", "Demanda presentada"), ("LIQUIDADA", "Liquidada"),
)
PRODUCTS = ("Tarjeta de crédito", "Préstamo personal", "Crédito automotriz", "Crédito nómina",
            "Crédito PyME")
STATE_ZONES = {"Ciudad de México": "America/Mexico_City", "Jalisco": "America/Mexico_City",
               "Nuevo León": "America/Monterrey", "Puebla": "America/Mexico_City",
               "Baja California": "America/Tijuana", "Sonora": "America/Hermosillo",
               "Yucatán": "America/Merida", "Quintana Roo": "America/Cancun",
               "Chihuahua": "America/Chihuahua", "Veracruz": "America/Mexico_City"}


def demo_refusal() -> str | None:
    """Why the demo must not be seeded here: institutions that are not the demo's (the demo
    would mix made-up debtors, users and history into a real portfolio)."""
    engine = make_engine(pool_size=1)
    try:
        with engine.connect() as conn:
            foreign = conn.execute(text(
                "SELECT code FROM portfolio.institutions WHERE (id, code) NOT IN "
                "(SELECT * FROM unnest(CAST(:ids AS int[]), CAST(:codes AS text[]))) ORDER BY id"),
                {"ids": [i for i, _, _ in demo.INSTITUTIONS],
                 "codes": [c for _, c, _ in demo.INSTITUTIONS]}).scalars().all()
    finally:
        engine.dispose()
    if foreign:
        shown = ", ".join(foreign[:5]) + ("…" if len(foreign) > 5 else "")
        return f"{len(foreign)} instituciones que no son de la demostración ({shown})"
    return None


def seed_demo() -> None:
    engine = make_engine(pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(insert(Institution).values(
                [{"id": i, "code": code, "name": name} for i, code, name in demo.INSTITUTIONS]
            ).on_conflict_do_nothing())
            conn.execute(text("SELECT setval(pg_get_serial_sequence('portfolio.institutions', 'id'),"
                              " (SELECT max(id) FROM portfolio.institutions))"))
            conn.execute(insert(Status).values([
                {"institution_id": i, "code": code, "name": name, "sort_order": n}
                for i, _, _ in demo.INSTITUTIONS for n, (code, name) in enumerate(STATUSES)
            ]).on_conflict_do_nothing())
        seed_layouts()
        with engine.begin() as conn:
            has_debtors = conn.execute(text("SELECT EXISTS (SELECT 1 FROM portfolio.debtors)")).scalar()
            if not has_debtors:
                _generate(conn)
    finally:
        engine.dispose()


def _generate(conn) -> None:
    fake = Faker("es_MX")
    fake.seed_instance(2026)
    rnd = random.Random(2026)
    today = aging.institution_today(demo.ZONE, datetime.now(timezone.utc))
    statuses = {(row.institution_id, row.code): row.id for row in conn.execute(
        text("SELECT id, institution_id, code FROM portfolio.statuses"))}
    agents = {1: (demo.USER_IDS["gestor1"], demo.USER_IDS["gestor2"]),
              2: (demo.USER_IDS["gestor1"],), 3: (demo.USER_IDS["gestor2"],)}
    debtors, phones, emails, addresses, accounts, instalments, movements = ([] for _ in range(7))
    for n in range(1, demo.DEBTORS + 1):
        institution = rnd.choices((1, 2, 3), weights=(5, 3, 2))[0]
        company = rnd.random() < 0.08
        name = (fake.company() if company
                else f"{fake.last_name()} {fake.last_name()} {fake.first_name()}").upper()
        state = rnd.choice(tuple(STATE_ZONES))
        debtors.append((n, institution, f"{1000 + n}", "company" if company else "person", name,
                        fake.rfc(natural=not company),
                        None if company else fake.curp(),
                        None if company else fake.date_of_birth(minimum_age=21, maximum_age=75),
                        STATE_ZONES[state]))
        for priority, kind in enumerate(rnd.sample(("mobile", "home", "work"), rnd.randint(1, 3)), 1):
            phones.append((n, f"55{rnd.randint(10000000, 99999999)}", kind, priority,
                           rnd.random() < 0.03))
        if rnd.random() < 0.7:
            emails.append((n, f"{fake.user_name()}{n}@{fake.free_email_domain()}".lower()))
        addresses.append((n, fake.street_address()[:200], fake.city()[:120], fake.city()[:120],
                          state, fake.postcode()[:5], STATE_ZONES[state]))
        # one account; its schedule decides days past due
        count = rnd.choice((12, 18, 24, 36, 48))
        instalment = Decimal(rnd.randrange(800, 15000)).quantize(Decimal("1.00"))
        months_running = rnd.randint(1, count)
        behind = rnd.choices((0, 1, 2, 3, 4, 6, 9, 14), weights=(40, 15, 10, 8, 7, 8, 6, 6))[0]
        behind = min(behind, months_running)
        first_due = today - timedelta(days=30 * months_running - rnd.randint(0, 25))
        paid = months_running - behind
        original = instalment * count
        balance = instalment * (count - paid)
        litigation = behind >= 9 and rnd.random() < 0.5
        stage_code = "DEMANDA" if litigation else "EN_GESTION" if behind else "NUEVA"
        agent = rnd.choice(agents[institution]) if behind and not litigation else None
        accounts.append((n, institution, n, f"{rnd.randint(4000, 4999)}{n:08d}",
                         rnd.choice(PRODUCTS), original, balance,
                         "litigation" if litigation else "current",
                         statuses[(institution, stage_code)], agent,
                         demo.USER_IDS["abogado"] if litigation else None,
                         first_due - timedelta(days=30)))
        for k in range(count):
            due = first_due + timedelta(days=30 * k)
            instalments.append((n, k + 1, due, instalment, instalment if k < paid else Decimal("0")))
            if k < paid:
                movements.append((n, "payment", instalment, due - timedelta(days=rnd.randint(0, 4)),
                                  f"PAG-{n}-{k + 1}"))

    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        _copy(cur, "debtors (id, institution_id, customer_number, kind, name, tax_id, national_id,"
                   " birth_date, time_zone)", debtors)
        _copy(cur, "phones (debtor_id, number, kind, priority, do_not_call)", phones)
        _copy(cur, "emails (debtor_id, address)", emails)
        _copy(cur, "addresses (debtor_id, street, neighborhood, municipality, state, postal_code,"
                   " time_zone)", addresses)
        _copy(cur, "accounts (id, institution_id, debtor_id, account_number, product,"
                   " original_amount, balance, stage, status_id, assigned_agent_id, lawyer_id,"
                   " opened_on)", accounts)
        _copy(cur, "instalments (account_id, number, due_date, amount, paid_amount)", instalments)
        _copy(cur, "movements (account_id, kind, amount, value_date, reference)", movements)
        for table in ("debtors", "accounts"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('portfolio.{table}', 'id'),"
                        f" (SELECT max(id) FROM portfolio.{table}))")
    _aging_history(conn, today)


#: the demo starts with a daily aging snapshot for each of its last ``DAILY_DAYS`` days (the
#: overviews' 30-day trends) and the last one of each of the ``MONTHS`` months before (roll
#: rates compare month ends); every day of 90 would be twice the rows for no new figure
DAILY_DAYS, MONTHS = 35, 3


def _aging_history(conn, today: date) -> None:
    """The snapshots the daily job would have taken (``aging.backfill``: exact for days past
    due, since demo payments arrive before their due dates; balances are today's), then
    today's, with aging refreshed as of today."""
    days = [today - timedelta(days=n) for n in range(1, DAILY_DAYS + 1)]
    month_end = days[-1].replace(day=1) - timedelta(days=1)
    for _ in range(MONTHS):
        days.append(month_end)
        month_end = month_end.replace(day=1) - timedelta(days=1)
    aging.backfill(conn, days)
    aging.refresh(conn, today)
    aging.snapshot(conn, today)


def _copy(cursor, target: str, rows: list[tuple]) -> None:
    with cursor.copy(f"COPY portfolio.{target} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# --- demo import layouts ----------------------------------------------------------------

DEMO_DIR = Path(__file__).resolve().parents[3] / "deploy" / "demo"

#: (institution id, layout name, demo file in deploy/demo, layout) — in import order
#: (each payments file pays accounts of its institution's portfolio file, listed before it);
#: every demo institution has a payments layout: the demo's past (``recaudo seed-live``)
#: imports the payments that keep promises through it
DEMO_LAYOUTS = [
    (1, "Cartera BANCOMER (CSV)", "bancomer_cartera.csv", {
        "kind": "portfolio", "file_format": "csv", "encoding": "utf-8", "delimiter": ",",
        "date_format": "%Y-%m-%d", "decimal_separator": ".", "thousands_separator": "",
        "columns": {
            "customer_number": "NUM_CLIENTE", "name": "NOMBRE", "kind": "TIPO_PERSONA",
            "tax_id": "RFC", "national_id": "CURP", "birth_date": "FECHA_NACIMIENTO",
            "account_number": "NUM_CUENTA", "product": "PRODUCTO",
            "original_amount": "MONTO_ORIGINAL", "balance": "SALDO",
            "opened_on": "FECHA_APERTURA", "phone1": "TELEFONO_CASA",
            "phone2": "TELEFONO_CELULAR", "email": "CORREO", "street": "CALLE",
            "neighborhood": "COLONIA", "municipality": "MUNICIPIO", "state": "ESTADO",
            "postal_code": "CP", "instalment_count": "PLAZO_MESES",
            "instalment_amount": "MENSUALIDAD", "first_due_date": "PRIMER_VENCIMIENTO",
            "instalments_paid": "MENSUALIDADES_PAGADAS",
            "guarantor_name": "AVAL", "guarantor_phone": "TELEFONO_AVAL"},
        "required": ["phone2"]}),
    (1, "Pagos BANCOMER (CSV)", "bancomer_pagos.csv", {
        "kind": "payments", "file_format": "csv", "encoding": "utf-8", "delimiter": ",",
        "date_format": "%Y-%m-%d", "decimal_separator": ".", "thousands_separator": "",
        "columns": {"account_number": "CUENTA", "amount": "IMPORTE",
                    "value_date": "FECHA_PAGO", "reference": "REFERENCIA"},
        "required": []}),
    (2, "Cartera CREDIMAS (CSV Latin-1)", "credimas_cartera.csv", {
        "kind": "portfolio", "file_format": "csv", "encoding": "latin-1", "delimiter": ";",
        "date_format": "%d/%m/%Y", "decimal_separator": ",", "thousands_separator": ".",
        "columns": {
            "customer_number": "No. Cliente", "name": "Nombre del acreditado",
            "tax_id": "R.F.C.", "account_number": "No. Crédito", "product": "Producto",
            "balance": "Saldo total", "overdue_amount": "Saldo vencido",
            "days_past_due": "Días de atraso", "stage": "Situación",
            "opened_on": "Fecha de disposición", "phone1": "Teléfono",
            "email": "Correo electrónico", "street": "Domicilio", "neighborhood": "Colonia",
            "municipality": "Municipio", "state": "Estado", "postal_code": "C.P."},
        "required": []}),
    (2, "Pagos CREDIMAS (CSV Latin-1)", "credimas_pagos.csv", {
        "kind": "payments", "file_format": "csv", "encoding": "latin-1", "delimiter": ";",
        "date_format": "%d/%m/%Y", "decimal_separator": ",", "thousands_separator": ".",
        "columns": {"account_number": "No. Crédito", "amount": "Importe pagado",
                    "value_date": "Fecha de pago", "reference": "Referencia"},
        "required": []}),
    (3, "Cartera AUTOFIN (XLSX)", "autofin_cartera.xlsx", {
        "kind": "portfolio", "file_format": "xlsx", "encoding": "utf-8", "delimiter": ",",
        "date_format": "%d/%m/%Y", "decimal_separator": ".", "thousands_separator": "",
        "columns": {
            "customer_number": "Cliente", "name": "Nombre", "kind": "Tipo",
            "tax_id": "RFC", "account_number": "Contrato", "product": "Vehículo",
            "original_amount": "Precio financiado", "balance": "Saldo insoluto",
            "opened_on": "Fecha contrato", "phone1": "Celular", "email": "Email",
            "street": "Dirección", "municipality": "Ciudad", "state": "Estado",
            "postal_code": "CP", "instalment_count": "Plazo",
            "instalment_amount": "Pago mensual", "first_due_date": "Primer pago",
            "instalments_paid": "Pagos realizados", "guarantor_name": "Aval"},
        "required": []}),
    (3, "Pagos AUTOFIN (XLSX)", "autofin_pagos.xlsx", {
        "kind": "payments", "file_format": "xlsx", "encoding": "utf-8", "delimiter": ",",
        "date_format": "%d/%m/%Y", "decimal_separator": ".", "thousands_separator": "",
        "columns": {"account_number": "Contrato", "amount": "Importe",
                    "value_date": "Fecha de pago", "reference": "Folio"},
        "required": []}),
]


def seed_layouts(engine=None) -> int:
    """The demo layouts of institutions 1-3 (idempotent: existing names are kept).
    Returns how many were created."""
    from sqlalchemy.dialects.postgresql import insert

    from recaudo_common.db import make_engine

    own = engine is None
    engine = engine or make_engine(pool_size=1)
    created = 0
    try:
        with engine.begin() as conn:
            present = set(conn.execute(select(Institution.id)).scalars())
            for institution_id, name, _, layout in DEMO_LAYOUTS:
                if institution_id not in present:
                    continue
                problems = layout_problems(layout)
                assert not problems, (name, problems)
                values = dict(layout, institution_id=institution_id, name=name,
                              required=sorted(set(layout["required"])
                                              | set(MANDATORY[layout["kind"]])))
                result = conn.execute(insert(ImportLayout).values(**values)
                                      .on_conflict_do_nothing().returning(ImportLayout.id))
                created += result.first() is not None
    finally:
        if own:
            engine.dispose()
    return created
