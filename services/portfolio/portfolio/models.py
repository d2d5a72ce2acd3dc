"""Tables of the portfolio service, all in its own ``portfolio`` schema."""
from recaudo_common.models import service_base

Base = service_base("portfolio")
