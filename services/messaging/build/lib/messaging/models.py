"""Tables of the messaging service, all in its own ``messaging`` schema."""
from recaudo_common.models import service_base

Base = service_base("messaging")
