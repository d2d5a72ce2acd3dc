"""Entrypoints of the documents service."""
from recaudo_common.db import Database
from recaudo_common.service import ServiceBase

from .models import Base


class DocumentsService(ServiceBase):
    name = "documents"
    db = Database(Base)
