"""Tables of the queues service, all in its own ``queues`` schema."""
from recaudo_common.models import service_base

Base = service_base("queues")
