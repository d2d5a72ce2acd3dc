"""Entrypoints of the messaging service."""
from recaudo_common.db import Database
from recaudo_common.service import ServiceBase

from .models import Base


class MessagingService(ServiceBase):
    name = "messaging"
    db = Database(Base)
