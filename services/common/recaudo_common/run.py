"""Run one Recaudo service: ``python -m recaudo_common.run <name>``.

Patches eventlet before anything else, configures logging from the settings and
hands the service class to nameko's own runner (the same as ``nameko run``).
"""
import warnings

# nameko 2 needs eventlet; its deprecation notice is not news to anyone reading logs
warnings.filterwarnings("ignore", message=r".*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402 - must precede every other import

import sys  # noqa: E402
from importlib import import_module  # noqa: E402

from nameko.cli.run import run  # noqa: E402

from .config import SERVICES, settings  # noqa: E402
from .db import make_cooperative  # noqa: E402
from .logs import setup_logging  # noqa: E402
from .resilience import bound_rpc_waits, tune_consumers  # noqa: E402
from .queue_type import declare_queues_as_configured  # noqa: E402
from .rpc_publishing import tune_rpc_publishing  # noqa: E402


def service_class(name: str):
    """The service class of ``name``: ``<name>.service.<Name>Service``."""
    module = import_module(f"{name}.service")
    return getattr(module, f"{name.capitalize()}Service")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in SERVICES:
        sys.exit(f"usage: python -m recaudo_common.run {{{'|'.join(SERVICES)}}}")
    name = argv[0]
    cfg = settings()
    setup_logging(name, cfg.log_format, cfg.log_level)
    make_cooperative()
    tune_rpc_publishing()
    tune_consumers()
    bound_rpc_waits()
    declare_queues_as_configured()
    run([service_class(name)], cfg.nameko)


if __name__ == "__main__":
    main()
