"""Entrypoints of the portfolio service."""
from recaudo_common.db import Database
from recaudo_common.service import ServiceBase

from .models import Base


class PortfolioService(ServiceBase):
    name = "portfolio"
    db = Database(Base)
