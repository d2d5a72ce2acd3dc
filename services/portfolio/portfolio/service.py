"""Entrypoints of the portfolio service."""
from sqlalchemy import select

from recaudo_common.db import Database
from recaudo_common.errors import NotFound
from recaudo_common.service import ServiceBase, rpc

from .models import Base, Institution
from .schemas import InstitutionOut


class PortfolioService(ServiceBase):
    name = "portfolio"
    db = Database(Base)

    @rpc
    def list_institutions(self):
        """The institutions the caller may act for (a creditor sees only its own)."""
        identity = self.caller.identity
        query = select(Institution).order_by(Institution.name)
        if not identity.all_institutions:
            query = query.where(Institution.id.in_(identity.institutions))
        with self.db.session() as session:
            return InstitutionOut(many=True).dump(session.execute(query).scalars().all())

    @rpc
    def get_institution(self, institution_id):
        identity = self.caller.identity
        with self.db.session() as session:
            institution = session.get(Institution, institution_id)
            if institution is None or not identity.may_access_institution(institution.id):
                raise NotFound("Institución no encontrada")
            return InstitutionOut().dump(institution)
