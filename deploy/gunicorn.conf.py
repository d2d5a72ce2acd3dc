"""gunicorn settings of the gateway: gthread workers, each with its own RPC proxy pool."""
from recaudo_common.config import settings

_cfg = settings()
bind = f"{_cfg.gateway_host}:{_cfg.gateway_port}"
worker_class = "gthread"
workers = 2
# the app is imported once, by the master, and the workers forked from it: a (re)start
# costs one import, not one per worker side by side (issue 20: back within seconds of a
# kill -9). Safe because nothing connects at import: RPC proxies are made on first use
# and the identity cache starts its listener in the process that first asks it
preload_app = True
threads = 8
timeout = 60
graceful_timeout = 10
accesslog = "-"
proc_name = "recaudo-gateway"
#: gunicornc's control socket is not used; the default path is shared by every gateway
#: on the machine (dev, tests, benchmarks), so each would take over the others'
control_socket_disable = True
