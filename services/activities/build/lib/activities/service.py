"""Entrypoints of the activities service."""
from recaudo_common.db import Database
from recaudo_common.service import ServiceBase

from .models import Base


class ActivitiesService(ServiceBase):
    name = "activities"
    db = Database(Base)
