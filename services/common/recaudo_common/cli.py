"""``recaudo`` management commands used by ``make up``, the deploy entrypoint and admins.

    recaudo createdb              create the database and the RabbitMQ vhost if missing
    recaudo migrate [service…]    apply every service's Alembic migrations
    recaudo makemigration SERVICE -m MESSAGE
    recaudo seed                  default profiles and catalogues; demo data when RECAUDO_DEMO is on
    recaudo seed-live             demo data made through the running services' RPCs (after `up`)
    recaudo create-admin USERNAME an administrator, password read from stdin
"""
from __future__ import annotations

import argparse
import getpass
import sys
import time
from importlib import import_module
from urllib.parse import quote, urlsplit

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from . import migrations
from .config import SERVICES, settings


def create_database(url: str, fresh: bool = False) -> bool:
    """Create the database named in ``url`` unless it exists; True if created.
    ``fresh`` drops it first (the test database: every run starts from nothing)."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if fresh:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": target.database}).first()
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    return not exists


def create_vhost(amqp_uri: str, management_url: str, fresh: bool = False) -> str:
    """Create the AMQP URI's vhost through the management API and grant its user;
    ``fresh`` deletes it first (no queued message survives from an earlier test run)."""
    amqp = urlsplit(amqp_uri)
    vhost = amqp.path.lstrip("/") or "/"
    mgmt = urlsplit(management_url)
    base = f"{mgmt.scheme}://{mgmt.hostname}:{mgmt.port}/api"
    auth = (mgmt.username or "guest", mgmt.password or "guest")
    name = quote(vhost, safe="")
    if fresh and vhost != "/":
        requests.delete(f"{base}/vhosts/{name}", auth=auth, timeout=10)
    requests.put(f"{base}/vhosts/{name}", auth=auth, timeout=10).raise_for_status()
    requests.put(f"{base}/permissions/{name}/{quote(amqp.username or 'guest')}", auth=auth,
                 json={"configure": ".*", "write": ".*", "read": ".*"},
                 timeout=10).raise_for_status()
    return vhost


def _seed_modules():
    for service in SERVICES:
        try:
            yield service, import_module(f"{service}.seed")
        except ModuleNotFoundError as exc:
            if exc.name != f"{service}.seed":
                raise


class SeedRefused(SystemExit):
    """Demo mode on a database that holds real data: nothing is written."""


def seed() -> list[str]:
    """Each service's defaults (``seed_defaults``), then in demo mode its ``seed_demo``.
    Both are idempotent: what exists is kept. In demo mode, first each service's
    ``demo_refusal()``: a reason not to seed (real data in its schema) refuses the whole
    seeding before anything is written."""
    modules = list(_seed_modules())
    if settings().demo:
        reasons = [r for _, m in modules if hasattr(m, "demo_refusal") for r in [m.demo_refusal()] if r]
        if reasons:
            raise SeedRefused(
                "RECAUDO_DEMO está activo, pero la base de datos ya tiene datos reales: "
                + "; ".join(reasons) + ". No se sembró nada. Apague RECAUDO_DEMO "
                "(RECAUDO_DEMO=0) para esta base, o use una base vacía para la demostración.")
    for _, module in modules:
        if hasattr(module, "seed_defaults"):
            module.seed_defaults()
    if not settings().demo:
        return []
    done = []
    for service, module in modules:
        if hasattr(module, "seed_demo"):
            module.seed_demo()
            done.append(service)
    return done


def seed_live() -> list[str]:
    """In demo mode, each service's ``seed_live(proxy)``: demo data made through the running
    services' own RPCs (a preventive campaign), as the platform. Idempotent."""
    if not settings().demo:
        return []
    from nameko.standalone.rpc import ClusterRpcProxy

    from .identity import IDENTITY_KEY, Identity, sign

    modules = [(s, m) for s, m in _seed_modules() if hasattr(m, "seed_live")]
    if not modules:
        return []
    context = {IDENTITY_KEY: sign(Identity.system("seed"))}
    done = []
    with ClusterRpcProxy(settings().nameko, context_data=context, timeout=120) as proxy:
        for service, module in modules:
            started = time.monotonic()
            try:
                module.seed_live(proxy)
                done.append(f"{service} ({time.monotonic() - started:.1f} s)")
            except Exception as exc:  # noqa: BLE001 - demo extras never stop `make up`
                print(f"demo data of {service} through its RPCs not seeded: {exc!r}",
                      file=sys.stderr)
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="recaudo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    createdb = sub.add_parser("createdb")
    createdb.add_argument("--fresh", action="store_true",
                          help="drop the database and vhost first (the test ones)")
    mig = sub.add_parser("migrate")
    mig.add_argument("services", nargs="*", help="default: all")
    rev = sub.add_parser("makemigration")
    rev.add_argument("service", choices=SERVICES)
    rev.add_argument("-m", "--message", required=True)
    sub.add_parser("seed")
    sub.add_parser("seed-live")
    admin = sub.add_parser("create-admin", help="create an administrator (password from stdin)")
    admin.add_argument("username")
    admin.add_argument("--name", help="display name")
    args = parser.parse_args(argv)
    cfg = settings()

    if args.command == "createdb":
        created = create_database(cfg.database_url, fresh=args.fresh)
        vhost = create_vhost(cfg.amqp_uri, cfg.rabbit_management_url, fresh=args.fresh)
        print(f"database {make_url(cfg.database_url).database}: "
              f"{'created' if created else 'present'}; vhost {vhost}: ready")
    elif args.command == "migrate":
        unknown = set(args.services) - set(SERVICES)
        if unknown:
            parser.error(f"unknown services: {', '.join(sorted(unknown))}")
        migrations.upgrade(args.services or SERVICES)
        print("migrations applied:", ", ".join(args.services or SERVICES))
    elif args.command == "makemigration":
        migrations.revision(args.service, args.message)
    elif args.command == "create-admin":
        from auth.seed import create_admin

        password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() \
            else getpass.getpass("password: ")
        create_admin(args.username.strip().lower(), password, args.name)
        print(f"administrator {args.username} created")
    elif args.command == "seed":
        done = seed()
        if not settings().demo:
            print("demo data: not seeded (RECAUDO_DEMO is off)")
        else:
            print("demo data seeded:", ", ".join(done) or "no service has demo data yet")
    elif args.command == "seed-live":
        done = seed_live()
        if done:
            print("demo data through the services:", ", ".join(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
