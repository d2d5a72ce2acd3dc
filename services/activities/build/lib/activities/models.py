"""Tables of the activities service, all in its own ``activities`` schema."""
from recaudo_common.models import service_base

Base = service_base("activities")
