"""Users, profiles and teams as an admin manages them, within the admin's own reach.

An admin scoped to some institutions sees and manages only users bound to a subset
of those institutions (never the all-institution staff), and nobody can hand out a
permission or an institution they do not hold themselves.
"""
from __future__ import annotations

from sqlalchemy import and_, false, func, not_, or_, select, true
from sqlalchemy.orm import Session

from recaudo_common.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from recaudo_common.identity import Identity
from recaudo_common.validation import page_of

from . import audit
from .authentication import access_changed, end_everything_of, lift_throttles, now
from .credentials import hash_password, password_problems
from .models import ApiKey, Profile, Team, TeamMember, User
from .contracts import MAX_NAMES


# --- reach ------------------------------------------------------------------------

def users_in_reach(identity: Identity):
    if identity.all_institutions:
        return true()
    return and_(User.all_institutions.is_(false()),
                User.institutions.contained_by(list(identity.institutions)))


def display_names(session: Session, identity: Identity, user_ids: list[int]) -> list[dict]:
    """Display names for the ids a screen shows (who logged an entry, owns a dispute):
    only of people who work the caller's institutions, that is the all-institution staff
    and anyone sharing an institution with the caller; other ids stay unnamed."""
    if len(user_ids) > MAX_NAMES:
        raise InvalidInput("Demasiados usuarios", {"user_ids": [f"Máximo {MAX_NAMES}"]})
    colleagues = true() if identity.all_institutions else or_(
        User.all_institutions.is_(true()),
        User.institutions.overlap(list(identity.institutions)))
    rows = session.execute(select(User.id, User.display_name)
                           .where(User.id.in_(set(user_ids)), colleagues)
                           .order_by(User.id)).all()
    return [{"id": user_id, "display_name": name} for user_id, name in rows]


def get_user(session: Session, identity: Identity, user_id: int, lock: bool = False) -> User:
    query = select(User).where(User.id == user_id, users_in_reach(identity))
    if lock:
        query = query.with_for_update(of=User)
    user = session.execute(query).scalar_one_or_none()
    if user is None:
        raise NotFound("Usuario no encontrado")
    return user


def _check_grant(identity: Identity, profile: Profile, all_institutions: bool,
                 institutions: list[int]) -> None:
    """No privilege escalation, and creditor profiles bind exactly one institution."""
    missing = set(profile.permissions) - identity.permissions
    if missing:
        raise PermissionDenied("No puede otorgar permisos que usted no tiene",
                               {"profile_id": [f"Incluye permisos que usted no tiene: "
                                               f"{', '.join(sorted(missing))}"]})
    if all_institutions and not identity.all_institutions:
        raise PermissionDenied("No puede otorgar acceso a todas las instituciones",
                               {"all_institutions": ["Fuera de su alcance"]})
    outside = [i for i in institutions if not identity.may_access_institution(i)]
    if outside:
        raise InvalidInput("Instituciones fuera de su alcance",
                           {"institutions": [f"Fuera de su alcance: {outside}"]})
    if profile.single_institution and (all_institutions or len(institutions) != 1):
        raise InvalidInput("Este perfil se vincula a exactamente una institución",
                           {"institutions": ["Indique exactamente una institución"]})
    if not all_institutions and not institutions:
        raise InvalidInput("Indique al menos una institución o todas",
                           {"institutions": ["Indique al menos una institución"]})


def require_holds(identity: Identity, user: User) -> None:
    """Credentials for a user (a new password, an API key) are that user's permissions:
    only someone who holds all of them may hand them out."""
    missing = set(user.profile.permissions) - identity.permissions
    if missing:
        raise PermissionDenied("El usuario tiene permisos que usted no tiene",
                               {"user_id": [f"Tiene permisos que usted no tiene: "
                                            f"{', '.join(sorted(missing))}"]})


def _profile(session: Session, profile_id: int) -> Profile:
    profile = session.get(Profile, profile_id)
    if profile is None:
        raise InvalidInput("Perfil inexistente", {"profile_id": ["Perfil inexistente"]})
    return profile


def _require_password(password: str, username: str, field: str = "password") -> None:
    problems = password_problems(password, username)
    if problems:
        raise InvalidInput("Contraseña no aceptada", {field: problems})


# --- users ---------------------------------------------------------------------------

def list_users(session: Session, identity: Identity, query: dict) -> dict:
    stmt = select(User).where(users_in_reach(identity))
    if query["search"]:
        needle = query["search"].strip()
        stmt = stmt.where(or_(User.username.icontains(needle, autoescape=True),
                              User.display_name.icontains(needle, autoescape=True),
                              User.email.icontains(needle, autoescape=True)))
    if query["profile_id"] is not None:
        stmt = stmt.where(User.profile_id == query["profile_id"])
    if query["active"] is not None:
        stmt = stmt.where(User.active.is_(query["active"]))
    total = session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    sort = query["sort"]
    column = getattr(User, sort.lstrip("-"))
    order = column.desc().nulls_last() if sort.startswith("-") else column.asc().nulls_last()
    rows = session.execute(stmt.order_by(order, User.id)
                           .offset((query["page"] - 1) * query["per_page"])
                           .limit(query["per_page"])).scalars().all()
    return page_of(rows, total, query["page"], query["per_page"])


def create_user(session: Session, identity: Identity, data: dict) -> User:
    profile = _profile(session, data["profile_id"])
    _check_grant(identity, profile, data["all_institutions"], data["institutions"])
    _require_password(data["password"], data["username"])
    if session.execute(select(User.id).where(User.username == data["username"])).first():
        raise Conflict("El usuario ya existe", {"username": ["Ya existe un usuario con ese nombre"]})
    user = User(username=data["username"], display_name=data["display_name"],
                email=data["email"], language=data["language"], time_zone=data["time_zone"],
                active=data["active"],
                profile=profile, all_institutions=data["all_institutions"],
                institutions=sorted(set(data["institutions"])),
                password_hash=hash_password(data["password"]), password_changed_at=now())
    session.add(user)
    session.flush()
    audit.record(session, "user_created", actor=identity, target_user_id=user.id,
                 username=user.username, profile=profile.name,
                 institutions="all" if user.all_institutions else user.institutions)
    return user


def update_user(session: Session, identity: Identity, user_id: int, data: dict) -> User:
    user = get_user(session, identity, user_id, lock=True)
    before = {"profile": user.profile.name, "all_institutions": user.all_institutions,
              "institutions": list(user.institutions)}
    profile = _profile(session, data["profile_id"]) if "profile_id" in data else user.profile
    all_institutions = data.get("all_institutions", user.all_institutions)
    institutions = sorted(set(data.get("institutions", user.institutions)))
    if {"profile_id", "all_institutions", "institutions"} & data.keys():
        _check_grant(identity, profile, all_institutions, institutions)
    for field in ("display_name", "email", "language", "time_zone"):
        if field in data:
            setattr(user, field, data[field])
    user.profile, user.all_institutions, user.institutions = profile, all_institutions, institutions
    user.updated_at = now()
    after = {"profile": profile.name, "all_institutions": all_institutions,
             "institutions": institutions}
    if after != before:
        audit.record(session, "permissions_changed", actor=identity, target_user_id=user.id,
                     before=before, after=after)
    audit.record(session, "user_updated", actor=identity, target_user_id=user.id,
                 fields=sorted(data))
    access_changed(session, "user_updated", user_ids=[user.id])
    return user


def set_active(session: Session, identity: Identity, user_id: int, active: bool) -> User:
    user = get_user(session, identity, user_id, lock=True)
    if user.id == identity.user_id and not active:
        raise Conflict("No puede desactivarse a sí mismo")
    if user.active != active:
        user.active = active
        user.updated_at = now()
        if not active:
            end_everything_of(session, user.id)
        audit.record(session, "user_enabled" if active else "user_disabled", actor=identity,
                     target_user_id=user.id)
    return user


def unlock(session: Session, identity: Identity, user_id: int) -> User:
    """Lift every wait on the account's logins (from every address) and a lock, and say
    so in the audit log, whatever there was to lift."""
    user = get_user(session, identity, user_id, lock=True)
    was_locked = user.locked_at is not None
    user.locked_at, user.failed_logins = None, 0
    forgotten = lift_throttles(session, user.username)
    audit.record(session, "account_unlocked", actor=identity, target_user_id=user.id,
                 was_locked=was_locked, failures_forgotten=forgotten)
    return user


def reset_password(session: Session, identity: Identity, user_id: int, password: str) -> User:
    user = get_user(session, identity, user_id, lock=True)
    require_holds(identity, user)
    _require_password(password, user.username)
    user.password_hash, user.password_changed_at = hash_password(password), now()
    end_everything_of(session, user.id)
    audit.record(session, "password_reset", actor=identity, target_user_id=user.id)
    return user


def change_own_password(session: Session, identity: Identity, current: str, new: str,
                        check, keep: str | None = None) -> None:
    """``keep``: the digest of the credential the change was made from (it stays signed
    in; every other session and token of the user ends)."""
    user = session.get(User, identity.user_id, with_for_update={"of": User})  # not profiles
    if user is None or not check(user.password_hash, current):
        raise InvalidInput("La contraseña actual no es correcta",
                           {"current_password": ["No es correcta"]})
    _require_password(new, user.username, field="new_password")
    if check(user.password_hash, new):
        raise InvalidInput("La nueva contraseña debe ser distinta",
                           {"new_password": ["Debe ser distinta de la actual"]})
    user.password_hash, user.password_changed_at = hash_password(new), now()
    end_everything_of(session, user.id, keep=keep)
    audit.record(session, "password_changed", actor=identity, target_user_id=user.id)


def list_api_keys(session: Session, identity: Identity) -> list[ApiKey]:
    return session.execute(select(ApiKey).join(User, User.id == ApiKey.user_id)
                           .where(users_in_reach(identity))
                           .order_by(ApiKey.created_at.desc())).scalars().all()


# --- profiles --------------------------------------------------------------------------

def create_profile(session: Session, identity: Identity, data: dict) -> Profile:
    _no_escalation(identity, data["permissions"])
    if session.execute(select(Profile.id).where(Profile.name == data["name"])).first():
        raise Conflict("El perfil ya existe", {"name": ["Ya existe un perfil con ese nombre"]})
    profile = Profile(name=data["name"], description=data["description"],
                      permissions=sorted(set(data["permissions"])),
                      single_institution=data["single_institution"])
    session.add(profile)
    session.flush()
    audit.record(session, "profile_created", actor=identity, profile=profile.name,
                 permissions=profile.permissions)
    return profile


def update_profile(session: Session, identity: Identity, profile_id: int, data: dict) -> Profile:
    profile = session.get(Profile, profile_id, with_for_update=True)
    if profile is None:
        raise NotFound("Perfil no encontrado")
    _no_escalation(identity, set(data["permissions"]) ^ set(profile.permissions))
    # a profile is shared: editing it changes every holder, so all must be in reach
    if session.execute(select(User.id).where(User.profile_id == profile.id,
                                             not_(users_in_reach(identity))).limit(1)).first():
        raise PermissionDenied("Usuarios fuera de su alcance tienen este perfil",
                               {"profile_id": ["Lo tienen usuarios fuera de su alcance"]})
    clash = session.execute(select(Profile.id).where(Profile.name == data["name"],
                                                     Profile.id != profile_id)).first()
    if clash:
        raise Conflict("El perfil ya existe", {"name": ["Ya existe un perfil con ese nombre"]})
    added = sorted(set(data["permissions"]) - set(profile.permissions))
    removed = sorted(set(profile.permissions) - set(data["permissions"]))
    profile.name, profile.description = data["name"], data["description"]
    profile.permissions = sorted(set(data["permissions"]))
    profile.single_institution = data["single_institution"]
    profile.updated_at = now()
    if added or removed:
        audit.record(session, "permissions_changed", actor=identity, profile=profile.name,
                     added=added, removed=removed)
    access_changed(session, "profile_updated", everyone=True)
    return profile


def _no_escalation(identity: Identity, permissions) -> None:
    missing = set(permissions) - identity.permissions
    if missing:
        raise PermissionDenied("No puede otorgar permisos que usted no tiene",
                               {"permissions": [f"Permisos que usted no tiene: "
                                                f"{', '.join(sorted(missing))}"]})


# --- teams ------------------------------------------------------------------------------

def team_view(session: Session, team: Team) -> dict:
    members = session.execute(
        select(User.id, User.username, User.display_name)
        .join(TeamMember, TeamMember.user_id == User.id)
        .where(TeamMember.team_id == team.id).order_by(User.display_name)).all()
    supervisor = session.get(User, team.supervisor_id)
    return {"id": team.id, "name": team.name, "supervisor_id": team.supervisor_id,
            "supervisor": supervisor.display_name,
            "members": [{"id": m.id, "username": m.username, "display_name": m.display_name}
                        for m in members]}


def list_teams(session: Session, identity: Identity, only_own: bool) -> list[dict]:
    stmt = select(Team).order_by(Team.name)
    if only_own:
        stmt = stmt.where(Team.supervisor_id == identity.user_id)
    teams = session.execute(stmt).scalars().all()
    visible = {u for u in session.execute(select(User.id).where(users_in_reach(identity))).scalars()}
    return [team_view(session, t) for t in teams if t.supervisor_id in visible or only_own]


def save_team(session: Session, identity: Identity, data: dict, team_id: int | None = None) -> dict:
    get_user(session, identity, data["supervisor_id"])
    for member in data["members"]:
        get_user(session, identity, member)
    clash = session.execute(select(Team.id).where(Team.name == data["name"],
                                                  Team.id != (team_id or 0))).first()
    if clash:
        raise Conflict("El equipo ya existe", {"name": ["Ya existe un equipo con ese nombre"]})
    if team_id is None:
        team = Team(name=data["name"], supervisor_id=data["supervisor_id"])
        session.add(team)
    else:
        team = session.get(Team, team_id, with_for_update=True)
        if team is None:
            raise NotFound("Equipo no encontrado")
        get_user(session, identity, team.supervisor_id)
        team.name, team.supervisor_id = data["name"], data["supervisor_id"]
    session.flush()
    session.query(TeamMember).filter(TeamMember.team_id == team.id).delete()
    session.add_all([TeamMember(team_id=team.id, user_id=m) for m in sorted(set(data["members"]))])
    session.flush()
    audit.record(session, "team_changed", actor=identity, team=team.name,
                 supervisor_id=team.supervisor_id, members=sorted(set(data["members"])))
    access_changed(session, "team_saved", everyone=True)
    return team_view(session, team)
