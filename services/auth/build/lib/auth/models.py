"""Tables of the auth service, all in its own ``auth`` schema."""
from recaudo_common.models import service_base

Base = service_base("auth")
