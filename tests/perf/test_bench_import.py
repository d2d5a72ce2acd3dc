"""Bulk import of a generated 1,000,000-row portfolio CSV through the running stack,
against ``psql \\copy`` of the same file into an unindexed table, in the same run.

    baseline   psql \\copy into an unindexed table (a plain table, and a TEMP one)
    import     create_import -> PUT to the presigned URL -> start_import -> poll get_import
               until done: the portfolio service streams the object from S3 into COPY,
               validates and merges it chunk by chunk into debtors, accounts, phones, e-mails
               and addresses (every index and foreign key in place) and announces
               accounts_changed per chunk
    re-import  the same file again (every row already there: the update path)

    floor (a)  the very rows the import wrote (debtors, accounts, phones, e-mails,
               addresses), \\copy'd in one transaction into copies of those tables with
               the same indexes (the trigram one included; no foreign keys)
    floor (b)  the same rows into unindexed copies, then those indexes built

Reported: seconds, rows/s, the ratio to \\copy and to the floors, and the portfolio
process's peak RSS (VmHWM of the pid in <var>/run/portfolio.pid). Targets (issue 22): the
first load of an institution <= 1.5x floor (b), a re-import <= 1.0x floor (a), peak RSS
< 500 MB; like every benchmark here it reports and does not fail on speed.
The file is generated once into <var>/bench_import_<rows>.csv (deterministic, no Faker:
a million Faker rows would take minutes). RECAUDO_BENCH_IMPORT_ROWS=100000 runs a
smaller one.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from nameko.standalone.rpc import ClusterRpcProxy
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from recaudo_common.config import settings
from recaudo_common.identity import Identity, sign

from .portfolio_file import (HEADER, ROOT, TIMEOUT, layout, portfolio_file, run_import,
                             wait_for_consumers)

ROWS = int(os.environ.get("RECAUDO_BENCH_IMPORT_ROWS", "1000000"))
INSTITUTION = 9001


def bench_file() -> Path:
    return portfolio_file(ROWS)


def _dsn() -> str:
    return make_url(settings().database_url).set(drivername="postgresql") \
        .render_as_string(hide_password=False)


def psql_copy(path: Path, temp: bool) -> float:
    """Seconds ``psql \\copy`` takes to load ``path`` into an unindexed table."""
    cols = ", ".join(f"c{i} text" for i in range(1, len(HEADER) + 1))
    table = "bench_copy" if temp else "public.bench_copy"
    create = f"CREATE {'TEMP ' if temp else ''}TABLE {table} ({cols})"
    setup = [] if temp else ["-c", f"DROP TABLE IF EXISTS {table}"]
    began = time.perf_counter()
    subprocess.run(["psql", _dsn(), "-X", "-q", "-v", "ON_ERROR_STOP=1", *setup, "-c", create,
                    "-c", f"\\copy {table} FROM '{path}' WITH (FORMAT csv, HEADER true)"],
                   check=True)
    elapsed = time.perf_counter() - began
    if not temp:
        subprocess.run(["psql", _dsn(), "-X", "-q", "-c", f"DROP TABLE {table}"], check=True)
    return elapsed


def wipe_institution(engine, remove=False) -> None:
    """Nothing of the benchmark institution (outside the timings); ``remove``: not the
    institution itself either (its code must not collide with another benchmark's)."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO portfolio.institutions (id, code, name) VALUES "
                          "(:i, 'BENCHIMP', 'Benchmark importación') ON CONFLICT (id) DO NOTHING"),
                     {"i": INSTITUTION})
        statements = ["DELETE FROM portfolio.import_jobs WHERE institution_id = :i",
                      "DELETE FROM portfolio.accounts WHERE institution_id = :i",
                      "DELETE FROM portfolio.debtors WHERE institution_id = :i"]
        if remove:
            statements += ["DELETE FROM portfolio.import_layouts WHERE institution_id = :i",
                           "DELETE FROM portfolio.institutions WHERE id = :i"]
        for statement in statements:
            conn.execute(text(statement), {"i": INSTITUTION})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE portfolio.debtors, portfolio.accounts, "
                          "portfolio.phones, portfolio.emails, portfolio.addresses"))


#: the tables an import writes, and how to pick the institution's rows of each
WRITTEN = {"debtors": "institution_id = {i}", "accounts": "institution_id = {i}",
           **{t: "debtor_id IN (SELECT id FROM portfolio.debtors WHERE institution_id = {i})"
              for t in ("phones", "emails", "addresses")}}
FLOOR = "bench_import_floor"


def _psql(*args: str) -> None:
    subprocess.run(["psql", _dsn(), "-X", "-q", "-v", "ON_ERROR_STOP=1", *args], check=True)


def index_floors(engine, workdir: Path) -> tuple[float, float, int]:
    """(floor a, floor b, rows): seconds to load the rows the import wrote into indexed
    copies of its tables in one transaction, and into unindexed copies then indexed."""
    with engine.connect() as conn:
        indexes = {t: [d for (d,) in conn.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'portfolio' "
            "AND tablename = :t"), {"t": t})] for t in WRITTEN}
    exports, rows = [], 0
    for table, where in WRITTEN.items():
        path = workdir / f"floor_{table}.copy"
        _psql("-c", f"\\copy (SELECT * FROM portfolio.{table} WHERE "
                    f"{where.format(i=INSTITUTION)}) TO '{path}'")
        rows += sum(1 for _ in path.open("rb"))
        exports.append((table, path))

    def load(indexed: bool) -> float:
        _psql("-c", f"DROP SCHEMA IF EXISTS {FLOOR} CASCADE", "-c", f"CREATE SCHEMA {FLOOR}")
        script = [f"CREATE TABLE {FLOOR}.{t} (LIKE portfolio.{t} INCLUDING "
                  f"{'ALL' if indexed else 'DEFAULTS'});" for t in WRITTEN]
        script += [f"\\copy {FLOOR}.{t} FROM '{path}'" for t, path in exports]
        if not indexed:  # the same definitions, on the copies
            script += [d.replace(" ON portfolio.", f" ON {FLOOR}.", 1) + ";"
                       for t in WRITTEN for d in indexes[t]]
        file = workdir / "floor.sql"
        file.write_text("\n".join(script) + "\n")
        began = time.perf_counter()
        _psql("-1", "-f", str(file))
        elapsed = time.perf_counter() - began
        _psql("-c", f"DROP SCHEMA {FLOOR} CASCADE")
        return elapsed

    return load(True), load(False), rows


def peak_rss_mb(name: str) -> float:
    pid = (ROOT / settings().var_dir / "run" / f"{name}.pid").read_text().split()[0]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_import_one_million_rows_vs_copy(stack_url):
    cfg = settings()
    path = bench_file()
    engine = create_engine(cfg.database_url)
    wipe_institution(engine)

    copy_plain = psql_copy(path, temp=False)
    copy_temp = psql_copy(path, temp=True)

    admin = Identity(user_id=1, username="bench", profile="Administrador",
                     permissions=frozenset({"portfolio.import", "institutions.manage"}),
                     institutions=None)
    with ClusterRpcProxy(cfg.nameko, context_data={"identity": sign(admin, ttl=TIMEOUT)},
                         timeout=120) as proxy:
        portfolio = proxy.portfolio
        layouts = {x["name"]: x["id"] for x in portfolio.list_layouts(INSTITUTION)}
        layout_id = layouts.get("Benchmark") or portfolio.save_layout(layout(INSTITUTION))["id"]
        first = run_import(portfolio, layout_id, path)
        rss_first = peak_rss_mb("portfolio")
        drained_first = wait_for_consumers()
        again = run_import(portfolio, layout_id, path)
        rss = peak_rss_mb("portfolio")
        drained_again = wait_for_consumers()

    floor_a, floor_b, floor_rows = index_floors(engine, path.parent)
    with engine.connect() as conn:
        accounts = conn.execute(text("SELECT count(*) FROM portfolio.accounts "
                                     "WHERE institution_id = :i"), {"i": INSTITUTION}).scalar()
    size_mb = path.stat().st_size / 1e6
    rows = [("psql \\copy, plain table", copy_plain, ""),
            ("psql \\copy, TEMP table", copy_temp, ""),
            ("floor (a): into indexed tables", floor_a,
             f"{floor_rows:,} rows of 5 tables, one transaction"),
            ("floor (b): unindexed, then indexed", floor_b, "the same rows and indexes"),
            ("import (first load)", first["total"],
             f"upload {first['upload']:.1f} s + service {first['service']:.1f} s; "
             f"peak RSS {rss_first:.0f} MB"),
            ("re-import (all rows exist)", again["total"],
             f"upload {again['upload']:.1f} s + service {again['service']:.1f} s; "
             f"peak RSS {rss:.0f} MB")]
    width = max(len(r[0]) for r in rows)
    ratio = "x \\copy"
    header = f"{'path':<{width}}  {'seconds':>8}  {'rows/s':>9}  {ratio:>8}"
    rule = "-" * (len(header) + 50)
    lines = ["", f"bulk import of {ROWS:,} rows ({size_mb:.0f} MB CSV, {len(HEADER)} columns) "
                 f"on {os.cpu_count()} CPUs, same run", rule, header, rule]
    for label, seconds, note in rows:
        lines.append(f"{label:<{width}}  {seconds:>8.1f}  {ROWS / seconds:>9,.0f}  "
                     f"{seconds / copy_plain:>8.1f}  {note}")
    lines += [rule,
              f"  first load {first['total'] / floor_b:.2f}x floor (b) (goal <= 1.5x); "
              f"re-import {again['total'] / floor_a:.2f}x floor (a) (goal <= 1.0x); "
              f"portfolio peak RSS {max(rss, rss_first):.0f} MB (goal < 500 MB)",
              f"  first job: {first['job']['message']}; the consumers of its events "
              f"(queues' projection) caught up {drained_first:.0f} s after it finished",
              f"  re-import: {again['job']['message']}; consumers caught up "
              f"{drained_again:.0f} s after"]
    print("\n".join(lines))

    assert first["job"]["state"] == "done", first["job"]
    assert again["job"]["state"] == "done", again["job"]
    assert first["job"]["imported_rows"] == ROWS and accounts == ROWS
    wipe_institution(engine, remove=True)
    engine.dispose()
