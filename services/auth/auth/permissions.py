"""The permission catalogue and the default profiles seeded on first start.

Permissions are code (each guards a feature the code implements); profiles are data
an admin edits from this catalogue. Labels are Spanish first, English second.
"""
from __future__ import annotations

#: code -> (Spanish label, English label)
PERMISSIONS: dict[str, tuple[str, str]] = {
    "portfolio.read": ("Consultar cartera (cuentas asignadas)", "Read portfolio (assigned accounts)"),
    "portfolio.read_all": ("Consultar toda la cartera de sus instituciones", "Read the whole portfolio of their institutions"),
    "portfolio.write": ("Editar deudores y cuentas", "Edit debtors and accounts"),
    "portfolio.import": ("Importar archivos de cartera y pagos", "Import portfolio and payment files"),
    "institutions.manage": ("Administrar instituciones y catálogos", "Manage institutions and catalogues"),
    "queues.work": ("Trabajar filas de cobranza", "Work collection queues"),
    "queues.manage": ("Administrar estrategias y filas", "Manage strategies and queues"),
    "activities.read": ("Consultar gestiones", "Read activities"),
    "activities.log": ("Registrar gestiones y promesas", "Log activities and promises"),
    "activities.manage": ("Administrar códigos de resultado", "Manage result codes"),
    "disputes.manage": ("Gestionar aclaraciones", "Manage disputes"),
    "promises.approve": ("Aprobar promesas, planes y convenios fuera de los límites",
                         "Approve promises, plans and settlements outside the limits"),
    "documents.read": ("Consultar documentos", "Read documents"),
    "documents.upload": ("Subir documentos", "Upload documents"),
    "documents.share": ("Compartir documentos por liga", "Share documents by link"),
    "messaging.send": ("Enviar correo y fax", "Send email and fax"),
    "messaging.manage": ("Administrar buzones y plantillas", "Manage mailboxes and templates"),
    "reports.view": ("Ver reportes", "View reports"),
    "users.manage": ("Administrar usuarios, perfiles, equipos y llaves de API", "Manage users, profiles, teams and API keys"),
    "compliance.manage": ("Editar políticas de contacto y consultar la bitácora de cumplimiento",
                          "Edit contact policies and read the compliance log"),
    "audit.view": ("Consultar la bitácora de seguridad", "View the security audit log"),
}

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
        "documents.read", "reports.view"], True),
}


def unknown(permissions) -> list[str]:
    return sorted(set(permissions) - set(PERMISSIONS))
