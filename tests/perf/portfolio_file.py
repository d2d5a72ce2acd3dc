"""A synthetic portfolio file and its import through the running stack, shared by the
benchmarks that need a large institution (the import itself, the call centre).

    path = portfolio_file(rows)                  # generated once under <var>/
    layout_id = portfolio.save_layout(layout(institution_id))["id"]
    run_import(portfolio, layout_id, path)       # create_import -> PUT -> start -> done
    wait_for_consumers()                         # the queues projection has it all
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests

from recaudo_common.config import settings

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 3600

HEADER = ["NUM_CLIENTE", "NOMBRE", "RFC", "NUM_CUENTA", "PRODUCTO", "SALDO", "SALDO_VENCIDO",
          "DIAS_ATRASO", "ETAPA", "FECHA_APERTURA", "TEL1", "TEL2", "CORREO", "CALLE",
          "COLONIA", "MUNICIPIO", "ESTADO", "CP"]
COLUMNS = {"customer_number": "NUM_CLIENTE", "name": "NOMBRE", "tax_id": "RFC",
           "account_number": "NUM_CUENTA", "product": "PRODUCTO", "balance": "SALDO",
           "overdue_amount": "SALDO_VENCIDO", "days_past_due": "DIAS_ATRASO",
           "stage": "ETAPA", "opened_on": "FECHA_APERTURA", "phone1": "TEL1",
           "phone2": "TEL2", "email": "CORREO", "street": "CALLE",
           "neighborhood": "COLONIA", "municipality": "MUNICIPIO", "state": "ESTADO",
           "postal_code": "CP"}

FIRST = ["José", "María", "Juan", "Guadalupe", "Francisco", "Ana", "Luis", "Patricia",
         "Carlos", "Rosa", "Miguel", "Laura", "Jorge", "Elena", "Pedro", "Sofía", "Ricardo",
         "Gabriela", "Fernando", "Verónica", "Alejandro", "Leticia", "Manuel", "Adriana"]
LAST = ["Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez",
        "Sánchez", "Ramírez", "Cruz", "Flores", "Gómez", "Morales", "Vázquez", "Reyes",
        "Jiménez", "Torres", "Díaz", "Gutiérrez", "Ruiz", "Mendoza", "Aguilar", "Ortiz"]
STATES = ["Ciudad de México", "Jalisco", "Nuevo León", "Puebla", "Veracruz", "Sonora",
          "Yucatán", "Quintana Roo", "Baja California", "Chihuahua", "Guanajuato"]


def generate(path: Path, rows: int) -> None:
    """About 226 bytes a row; one customer in seven has two accounts (adjacent rows)."""
    rnd = random.Random(42)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as out:
        out.write(",".join(HEADER) + "\n")
        batch = []
        for i in range(1, rows + 1):
            c = i - (i % 7 == 0)
            first, last1, last2 = FIRST[c % 24], LAST[(c // 24) % 23], LAST[(c // 552) % 23]
            cents = rnd.randrange(100, 50_000_000)
            dpd = rnd.choice((0, 0, 0, 15, 45, 90, 180))
            batch.append(
                f"C{c:09d},{first} {last1} {last2},{last1[:2].upper()}{first[0]}"
                f"{c % 1000000:06d}XX,A{i:010d},Tarjeta de crédito,{cents // 100}."
                f"{cents % 100:02d},{cents // 30000}.{(cents // 300) % 100:02d},{dpd},"
                f"{'moroso' if dpd else 'al corriente'},{2010 + i % 14}-{1 + i % 12:02d}-"
                f"{1 + i % 28:02d},55{c % 100000000:08d},33{i % 100000000:08d},"
                f"cliente{c}@ejemplo.mx,Calle {last1} {i % 999},Col. Centro,"
                f"Municipio {c % 300},{STATES[c % 11]},{c % 99999:05d}\n")
            if len(batch) == 10_000:
                out.write("".join(batch))
                batch = []
        out.write("".join(batch))
    tmp.rename(path)


def layout(institution_id: int, name: str = "Benchmark") -> dict:
    """The portfolio layout reading the generated file's columns."""
    return {"institution_id": institution_id, "name": name, "kind": "portfolio",
            "columns": dict(COLUMNS)}


def portfolio_file(rows: int) -> Path:
    """The generated file of ``rows`` rows under the var dir (made once, deterministic)."""
    path = ROOT / settings().var_dir / f"bench_import_{rows}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate(path, rows)
    return path


def portfolio_backlog() -> int:
    """Messages of portfolio events not yet handled by their consumers (queues' projection)."""
    cfg = settings()
    mgmt = urlsplit(cfg.rabbit_management_url)
    vhost = quote(urlsplit(cfg.amqp_uri).path.lstrip("/") or "/", safe="")
    response = requests.get(f"{mgmt.scheme}://{mgmt.hostname}:{mgmt.port}/api/queues/{vhost}",
                            auth=(mgmt.username or "guest", mgmt.password or "guest"),
                            params={"columns": "name,messages"}, timeout=10)
    response.raise_for_status()
    return sum(q.get("messages", 0) for q in response.json()
               if q["name"].startswith("evt-portfolio-"))


def wait_for_consumers(seconds: float = 1800) -> float:
    """Seconds until every portfolio event is consumed: the stack must not be stopped with
    a backlog (the next start would replay it before answering /healthz)."""
    began = time.perf_counter()
    while portfolio_backlog() and time.perf_counter() - began < seconds:
        time.sleep(1)
    return time.perf_counter() - began


def run_import(portfolio, layout_id: int, path: Path) -> dict:
    began = time.perf_counter()
    created = portfolio.create_import({"layout_id": layout_id, "file_name": path.name,
                                       "size_bytes": path.stat().st_size})
    with open(path, "rb") as body:
        response = requests.put(created["upload_url"], data=body, timeout=TIMEOUT)
    response.raise_for_status()
    uploaded = time.perf_counter()
    job_id = created["job"]["id"]
    portfolio.start_import(job_id)
    while True:
        job = portfolio.get_import(job_id)
        if job["state"] in ("done", "failed"):
            break
        if time.perf_counter() - began > TIMEOUT:
            raise TimeoutError(job)
        time.sleep(0.5)
    finished = time.perf_counter()
    return {"job": job, "total": finished - began, "upload": uploaded - began,
            "service": finished - uploaded}
