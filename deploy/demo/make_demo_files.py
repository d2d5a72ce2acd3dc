"""Regenerate the demo import files beside this script (deterministic: same seed, same files).

    .venv/bin/python deploy/demo/make_demo_files.py

One file per demo layout (``portfolio.seed.DEMO_LAYOUTS``):

    bancomer_cartera.csv   BANCOMER portfolio, UTF-8, comma, 2024-03-31, 1234.56
    bancomer_pagos.csv     BANCOMER payments of those accounts, UTF-8, comma
    credimas_cartera.csv   CREDIMAS portfolio, Latin-1, semicolon, 31/03/2024, 1.234,56
    credimas_pagos.csv     CREDIMAS payments of those credits, same format
    autofin_cartera.xlsx   AUTOFIN car loans, XLSX with real dates and numbers
    autofin_pagos.xlsx     AUTOFIN payments of those contracts, XLSX

Each payments file is drawn from its portfolio file as written (read back from disk), so
``credimas_payments()`` and ``autofin_payments()`` can be rerun on their own.

Names, RFC, CURP and streets come from Faker (es_MX); phones are 10-digit Mexican numbers.
The files are clean: bad rows live in the tests, not in the demo.
"""
from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
from faker import Faker

HERE = Path(__file__).resolve().parent

#: (state, municipalities, phone area code, postal code prefix)
PLACES = [
    ("Ciudad de México", ["Benito Juárez", "Coyoacán", "Iztapalapa", "Tlalpan"], "55", "0"),
    ("Jalisco", ["Guadalajara", "Zapopan", "Tlaquepaque"], "33", "44"),
    ("Nuevo León", ["Monterrey", "San Nicolás de los Garza", "Guadalupe"], "81", "64"),
    ("Puebla", ["Puebla", "Cholula"], "222", "72"),
    ("Sonora", ["Hermosillo", "Cajeme"], "662", "83"),
    ("Baja California", ["Tijuana", "Mexicali"], "664", "22"),
    ("Quintana Roo", ["Benito Juárez", "Solidaridad"], "998", "77"),
    ("Yucatán", ["Mérida", "Valladolid"], "999", "97"),
    ("Veracruz", ["Veracruz", "Xalapa"], "229", "91"),
]
COLONIES = ["Centro", "Del Valle", "Roma Norte", "Providencia", "Chapultepec", "Las Águilas",
            "Jardines del Bosque", "San Ángel", "Reforma", "Lomas Verdes", "El Mirador"]


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


class People:
    def __init__(self, seed: int):
        self.fake = Faker("es_MX")
        self.fake.seed_instance(seed)
        self.rnd = random.Random(seed)

    def phone(self, area: str) -> str:
        rest = "".join(str(self.rnd.randrange(10)) for _ in range(10 - len(area)))
        return area + rest

    def place(self):
        state, towns, area, cp = self.rnd.choice(PLACES)
        postal = cp + "".join(str(self.rnd.randrange(10)) for _ in range(5 - len(cp)))
        return state, self.rnd.choice(towns), area, postal

    def person(self):
        first = self.fake.first_name()
        last = f"{self.fake.last_name()} {self.fake.last_name()}"
        return f"{first} {last}"

    def email(self, name: str) -> str:
        user = name.lower().split()[0] + "." + name.lower().split()[-1]
        for a, b in zip("áéíóúüñ", "aeiouun"):
            user = user.replace(a, b)
        return f"{user}{self.rnd.randrange(10, 99)}@{self.rnd.choice(['gmail.com', 'hotmail.com', 'outlook.com', 'yahoo.com.mx'])}"


def money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def bancomer() -> list[list[str]]:
    p = People(101)
    header = ["NUM_CLIENTE", "NOMBRE", "TIPO_PERSONA", "RFC", "CURP", "FECHA_NACIMIENTO",
              "NUM_CUENTA", "PRODUCTO", "MONTO_ORIGINAL", "SALDO", "FECHA_APERTURA",
              "TELEFONO_CASA", "TELEFONO_CELULAR", "CORREO", "CALLE", "COLONIA", "MUNICIPIO",
              "ESTADO", "CP", "PLAZO_MESES", "MENSUALIDAD", "PRIMER_VENCIMIENTO",
              "MENSUALIDADES_PAGADAS", "AVAL", "TELEFONO_AVAL"]
    rows = [header]
    products = [("Préstamo personal", 24, 60_000), ("Crédito automotriz", 48, 320_000),
                ("Tarjeta de crédito", 12, 25_000), ("Crédito nómina", 36, 90_000)]
    number = 0
    for customer in range(1, 26):
        company = customer % 9 == 0
        name = p.fake.company() if company else p.person()
        state, town, area, postal = p.place()
        birth = "" if company else p.fake.date_of_birth(minimum_age=22, maximum_age=70).isoformat()
        accounts = 2 if customer % 5 == 0 else 1
        for _ in range(accounts):
            number += 1
            product, term, base = p.rnd.choice(products)
            original = money(Decimal(base) * Decimal(p.rnd.randrange(60, 160)) / 100)
            instalment = money(original * Decimal("1.18") / term)
            opened = date(2024, 1, 15) + timedelta(days=p.rnd.randrange(0, 500))
            first_due = add_months(opened, 1)
            elapsed = max(0, (2026 - first_due.year) * 12 + 10 - first_due.month)
            paid = min(term, max(0, elapsed - p.rnd.choice([0, 0, 0, 1, 2, 4])))
            balance = money(instalment * (term - paid))
            guarantor = p.person() if product == "Crédito automotriz" else ""
            rows.append([
                f"BC-{20000 + customer}", name, "empresa" if company else "persona",
                p.fake.rfc() if hasattr(p.fake, "rfc") else "", "" if company else p.fake.curp(),
                birth, f"4152-{3100 + number:04d}-{p.rnd.randrange(10**4):04d}", product,
                str(original), str(balance), opened.isoformat(), p.phone(area), p.phone(area),
                p.email(name) if not company else f"contacto{customer}@empresa.com.mx",
                f"{p.fake.street_name()} {p.rnd.randrange(1, 999)}", p.rnd.choice(COLONIES),
                town, state, postal, str(term), str(instalment), first_due.isoformat(),
                str(paid), guarantor, p.phone(area) if guarantor else ""])
    return rows


def bancomer_payments(portfolio: list[list[str]]) -> list[list[str]]:
    rnd = random.Random(202)
    header = ["CUENTA", "IMPORTE", "FECHA_PAGO", "REFERENCIA"]
    rows = [header]
    accounts = [(r[6], Decimal(r[20])) for r in portfolio[1:] if Decimal(r[9]) > 0]
    for i, (account, instalment) in enumerate(rnd.sample(accounts, 20), start=1):
        day = date(2026, 10, 1) + timedelta(days=rnd.randrange(0, 45))
        amount = instalment if i % 4 else money(instalment / 2)
        rows.append([account, str(amount), day.isoformat(), f"SPEI{day:%Y%m%d}{i:05d}"])
    return rows


def mx(value: Decimal) -> str:  # 1.234,56
    whole, cents = f"{value:.2f}".split(".")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return ".".join(groups) + "," + cents


def credimas() -> list[list[str]]:
    p = People(303)
    header = ["No. Cliente", "Nombre del acreditado", "R.F.C.", "No. Crédito", "Producto",
              "Saldo total", "Saldo vencido", "Días de atraso", "Situación",
              "Fecha de disposición", "Teléfono", "Correo electrónico", "Domicilio", "Colonia",
              "Municipio", "Estado", "C.P."]
    rows = [header]
    for i in range(1, 31):
        name = p.person()
        state, town, area, postal = p.place()
        balance = money(Decimal(p.rnd.randrange(3_000, 180_000)) + Decimal(p.rnd.randrange(100)) / 100)
        days = p.rnd.choice([0, 0, 0, 12, 35, 67, 95, 140, 210])
        overdue = money(balance * Decimal(min(days, 180)) / 400) if days else Decimal("0.00")
        stage = "Al corriente" if not days else ("Litigio" if days > 180 else "Moroso")
        opened = date(2023, 6, 1) + timedelta(days=p.rnd.randrange(0, 700))
        rows.append([f"CM{7000 + i}", name, p.fake.rfc() if hasattr(p.fake, "rfc") else "",
                     f"CRED-{88000 + i * 7}", p.rnd.choice(["Crédito simple", "Microcrédito",
                                                            "Crédito grupal"]),
                     mx(balance), mx(overdue), str(days), stage, opened.strftime("%d/%m/%Y"),
                     p.phone(area), p.email(name),
                     f"{p.fake.street_name()} No. {p.rnd.randrange(1, 400)}",
                     p.rnd.choice(COLONIES), town, state, postal])
    return rows


def credimas_payments(portfolio: Path) -> list[list[str]]:
    """20 payments of the credits in ``portfolio`` (the Latin-1 file): part of what is
    overdue, or of the balance of a credit up to date."""
    rnd = random.Random(505)
    with open(portfolio, encoding="latin-1", newline="") as source:
        credits = list(csv.reader(source, delimiter=";"))[1:]

    def number(text: str) -> Decimal:
        return Decimal(text.replace(".", "").replace(",", "."))

    rows = [["No. Crédito", "Importe pagado", "Fecha de pago", "Referencia"]]
    owing = [(r[3], number(r[5]), number(r[6])) for r in credits if number(r[5]) > 0]
    for i, (credit, balance, overdue) in enumerate(rnd.sample(owing, 20), start=1):
        day = date(2026, 10, 1) + timedelta(days=rnd.randrange(0, 45))
        amount = money(overdue / 2) if overdue else money(balance / 24)
        rows.append([credit, mx(amount), day.strftime("%d/%m/%Y"), f"CM-PAGO-{i:04d}"])
    return rows


def autofin_payments(portfolio: Path, path: Path) -> None:
    """20 monthly payments of the contracts in ``portfolio`` (one each, a second one for some
    when fewer than 20 still owe), as an XLSX with real dates and numbers."""
    rnd = random.Random(606)
    sheet = openpyxl.load_workbook(portfolio).active
    owing = [(r[4], r[16]) for r in sheet.iter_rows(min_row=2, values_only=True) if r[7] > 0]
    chosen = rnd.sample(owing, min(20, len(owing)))
    chosen += rnd.sample(owing, 20 - len(chosen))
    book = openpyxl.Workbook()
    out = book.active
    out.title = "Pagos"
    out.append(["Contrato", "Importe", "Fecha de pago", "Folio"])
    for i, (contract, monthly) in enumerate(chosen, start=1):
        day = date(2026, 10, 1) + timedelta(days=rnd.randrange(0, 45))
        out.append([contract, monthly, day, f"AF-{day:%Y%m%d}-{i:03d}"])
    for row in out.iter_rows(min_row=2):
        row[1].number_format, row[2].number_format = "#,##0.00", "DD/MM/YYYY"
    book.save(path)


def autofin(path: Path) -> None:
    p = People(404)
    header = ["Cliente", "Nombre", "Tipo", "RFC", "Contrato", "Vehículo", "Precio financiado",
              "Saldo insoluto", "Fecha contrato", "Celular", "Email", "Dirección", "Ciudad",
              "Estado", "CP", "Plazo", "Pago mensual", "Primer pago", "Pagos realizados", "Aval"]
    cars = ["Nissan Versa 2023", "Chevrolet Aveo 2024", "Volkswagen Jetta 2022",
            "Toyota Hilux 2023", "Kia Rio 2024", "Mazda 3 2023"]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Cartera"
    sheet.append(header)
    for i in range(1, 23):
        company = i % 7 == 0
        name = p.fake.company() if company else p.person()
        state, town, area, postal = p.place()
        price = money(Decimal(p.rnd.randrange(180_000, 650_000)))
        term = p.rnd.choice([24, 36, 48, 60])
        monthly = money(price * Decimal("1.25") / term)
        signed = date(2023, 9, 1) + timedelta(days=p.rnd.randrange(0, 720))
        first = add_months(signed, 1)
        elapsed = max(0, (2026 - first.year) * 12 + 10 - first.month)
        made = min(term, max(0, elapsed - p.rnd.choice([0, 0, 1, 3])))
        sheet.append([f"AF{500 + i}", name, "moral" if company else "física",
                      p.fake.rfc() if hasattr(p.fake, "rfc") else "", f"AUTO-{2300 + i}",
                      p.rnd.choice(cars), float(price), float(monthly * (term - made)), signed,
                      int(p.phone(area)), p.email(name), f"{p.fake.street_name()} {i * 13}",
                      town, state, postal, term, float(monthly), first, made,
                      p.person() if i % 3 == 0 else None])
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            if cell.column_letter in ("I", "R"):
                cell.number_format = "DD/MM/YYYY"
            elif cell.column_letter in ("G", "H", "Q"):
                cell.number_format = "#,##0.00"
    book.save(path)


def write_csv(path: Path, rows, delimiter=",", encoding="utf-8") -> None:
    with open(path, "w", encoding=encoding, newline="") as out:
        csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)


def main() -> None:
    portfolio = bancomer()
    write_csv(HERE / "bancomer_cartera.csv", portfolio)
    write_csv(HERE / "bancomer_pagos.csv", bancomer_payments(portfolio))
    write_csv(HERE / "credimas_cartera.csv", credimas(), delimiter=";", encoding="latin-1")
    write_csv(HERE / "credimas_pagos.csv", credimas_payments(HERE / "credimas_cartera.csv"),
              delimiter=";", encoding="latin-1")
    autofin(HERE / "autofin_cartera.xlsx")
    autofin_payments(HERE / "autofin_cartera.xlsx", HERE / "autofin_pagos.xlsx")


if __name__ == "__main__":
    main()
