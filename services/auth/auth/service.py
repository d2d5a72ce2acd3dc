"""Entrypoints of the auth service."""
from recaudo_common.db import Database
from recaudo_common.service import ServiceBase

from .models import Base


class AuthService(ServiceBase):
    name = "auth"
    db = Database(Base)
