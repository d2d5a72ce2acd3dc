"""Structured logging that carries one request id from the gateway through every service.

The gateway puts ``request_id`` into nameko context data; nameko propagates context
data to every RPC and event it triggers, and the ``RequestContext`` dependency below
copies it into a context variable that the log formatter reads.
"""
from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

from nameko.extensions import DependencyProvider

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REQUEST_ID_KEY = "request_id"


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers in deploy."""

    def __init__(self, process_name: str):
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "process": self.process_name,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(process_name: str, fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(process_name))
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s {process_name} [%(request_id)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("amqp", "kombu", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RequestContext(DependencyProvider):
    """Binds the caller's request id to the worker's logs (and gives it to the service)."""

    def worker_setup(self, worker_ctx):
        request_id = worker_ctx.data.get(REQUEST_ID_KEY) or worker_ctx.call_id
        worker_ctx.data[REQUEST_ID_KEY] = request_id
        request_id_var.set(request_id)

    def get_dependency(self, worker_ctx):
        return worker_ctx.data.get(REQUEST_ID_KEY)
