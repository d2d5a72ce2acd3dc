"""Entrypoints of the queues service."""
from recaudo_common.db import Database
from recaudo_common.service import ServiceBase

from .models import Base


class QueuesService(ServiceBase):
    name = "queues"
    db = Database(Base)
