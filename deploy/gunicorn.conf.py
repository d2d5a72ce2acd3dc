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
