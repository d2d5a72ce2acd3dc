"""The default profiles seeded on first start (the permission catalogue is a contract:
``contracts.PERMISSIONS``).

Permissions are code (each guards a feature the code implements); profiles are data
an admin edits from this catalogue. Labels are Spanish first, English second.
"""
from __future__ import annotations

from .contracts import PERMISSIONS

_ALL = sorted(PERMISSIONS)

#: name -> (description, permissions, single institution)
DEFAULT_PROFILES: dict[str, tuple[str, list[str], bool]] = {
    "Administrador": ("Administración completa de la plataforma", _ALL, False),
    "Supervisor": ("Estrategias, filas, equipos y productividad", [
        "portfolio.read", "portfolio.read_all", "portfolio.write", "portfolio.import",
        "queues.work", "queues.manage", "activities.read", "activities.log",
        "disputes.manage", "promises.approve", "documents.read", "documents.upload",
        "documents.share", "messaging.send", "reports.view"], False),
    "Gestor": ("Gestor de cobranza: trabaja sus cuentas asignadas", [
        "portfolio.read", "queues.work", "activities.read", "activities.log",
        "documents.read", "documents.upload", "messaging.send"], False),
    "Abogado": ("Abogado: cuentas en litigio asignadas", [
        "portfolio.read", "activities.read", "activities.log", "disputes.manage",
        "documents.read", "documents.upload", "messaging.send"], False),
    "Cliente": ("Institución acreedora: consulta de su propia cartera", [
        "portfolio.read", "portfolio.read_all", "activities.read", "documents.read",
        "reports.view"], True),
    "Integración": ("Sistemas de socios por API", [
        "portfolio.read", "portfolio.read_all", "portfolio.import", "activities.read",
        "documents.read", "reports.view", "webhooks.manage"], True),
}


def unknown(permissions) -> list[str]:
    return sorted(set(permissions) - set(PERMISSIONS))
