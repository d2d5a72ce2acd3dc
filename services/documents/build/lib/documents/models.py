"""Tables of the documents service, all in its own ``documents`` schema."""
from recaudo_common.models import service_base

Base = service_base("documents")
