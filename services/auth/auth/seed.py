"""Default profiles (always) and demo users (demo mode only); the demo team through the
running auth service (``seed_live``), so its ``team_changed`` reaches the queues and
activities services as an administrator's team would."""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from recaudo_common import demo
from recaudo_common.db import make_engine

from .credentials import hash_password, password_problems
from .models import Profile, User
from .permissions import DEFAULT_PROFILES

DEMO_PASSWORD = demo.DEMO_PASSWORD
#: username -> (display name, profile, institutions: None = all)
DEMO_USERS = {
    "admin": ("Administración Recaudo", "Administrador", None),
    "supervisor": ("Alejandra Flores Rosas", "Supervisor", None),
    "gestor1": ("Carlos Bourges Medina", "Gestor", demo.GESTOR_INSTITUTIONS["gestor1"]),
    "gestor2": ("Ivonne Zurita Campos", "Gestor", demo.GESTOR_INSTITUTIONS["gestor2"]),
    "abogado": ("Teresa Pineda Luna", "Abogado", None),
    "cliente": ("Portal BBVA Bancomer", "Cliente", (demo.CLIENT_INSTITUTION_ID,)),
}
#: team name -> (supervisor, members): per demo institution, the collectors who work it
DEMO_TEAMS = {name: ("supervisor", tuple(g for g, insts in demo.GESTOR_INSTITUTIONS.items()
                                         if institution in insts))
              for institution, name in demo.TEAMS.items()}


@contextmanager
def _session():
    engine = make_engine(pool_size=1)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def seed_defaults() -> None:
    """Create the default profiles that do not exist yet (an admin's edits are kept)."""
    with _session() as session, session.begin():
        existing = set(session.execute(select(Profile.name)).scalars())
        for name, (description, permissions, single) in DEFAULT_PROFILES.items():
            if name not in existing:
                session.add(Profile(name=name, description=description,
                                    permissions=sorted(permissions), single_institution=single))


def seed_demo() -> None:
    with _session() as session, session.begin():
        profiles = {p.name: p for p in session.execute(select(Profile)).scalars()}
        users = {u.username: u for u in session.execute(select(User)).scalars()}
        password_hash = hash_password(DEMO_PASSWORD)
        for username, (display_name, profile, institutions) in DEMO_USERS.items():
            if username in users:
                continue
            users[username] = User(
                id=demo.USER_IDS[username], username=username, display_name=display_name, profile=profiles[profile],
                email=f"{username}@recaudo.example", password_hash=password_hash,
                all_institutions=institutions is None, institutions=list(institutions or ()))
            session.add(users[username])
        session.flush()
        session.execute(text("SELECT setval(pg_get_serial_sequence('auth.users', 'id'), "
                             "(SELECT max(id) FROM auth.users))"))


def seed_live(proxy) -> list[dict]:
    """The demo teams through ``auth.save_team`` (``proxy``: started proxies carrying the
    platform's identity), so ``team_changed`` tells every service that keeps teams.
    Idempotent: a team of that name is left as it is. Answers the teams made."""
    existing = {t["name"] for t in proxy.auth.list_teams()}
    made = []
    for name, (supervisor, members) in DEMO_TEAMS.items():
        if name not in existing:
            made.append(proxy.auth.save_team({
                "name": name, "supervisor_id": demo.USER_IDS[supervisor],
                "members": [demo.USER_IDS[m] for m in members]}))
    return made


def create_admin(username: str, password: str, display_name: str | None = None) -> None:
    """The first administrator of a real installation (no default passwords exist)."""
    problems = password_problems(password, username)
    if problems:
        raise SystemExit("password not accepted: " + "; ".join(problems))
    seed_defaults()
    with _session() as session, session.begin():
        if session.execute(select(User.id).where(User.username == username)).first():
            raise SystemExit(f"user {username} already exists")
        admin = session.execute(select(Profile).where(Profile.name == "Administrador")).scalar_one()
        session.add(User(username=username, display_name=display_name or username,
                         profile=admin, password_hash=hash_password(password),
                         all_institutions=True))
