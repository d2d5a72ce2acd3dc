"""gunicorn settings of the gateway: gthread workers, each with its own RPC proxy pool."""
from recaudo_common.config import settings

_cfg = settings()
bind = f"{_cfg.gateway_host}:{_cfg.gateway_port}"
worker_class = "gthread"
workers = 2
threads = 8
timeout = 60
graceful_timeout = 10
accesslog = "-"
proc_name = "recaudo-gateway"
#: gunicornc's control socket is not used; the default path is shared by every gateway
#: on the machine (dev, tests, benchmarks), so each would take over the others'
control_socket_disable = True
