"""Printed at the end of ``make up``: where Recaudo answers and who can log in."""
from importlib import import_module

from recaudo_common.config import settings


def main() -> None:
    cfg = settings()
    print(f"\nRecaudo is up: http://127.0.0.1:{cfg.gateway_port}")
    print(f"  API docs:    http://127.0.0.1:{cfg.gateway_port}/api/v1/docs")
    print(f"  health:      http://127.0.0.1:{cfg.gateway_port}/healthz")
    print("  logs:        make logs   (files under var/log/)")
    try:
        seed = import_module("auth.seed")
    except ModuleNotFoundError:
        return
    if cfg.demo:
        print(f"  demo users (password '{seed.DEMO_PASSWORD}'): {', '.join(seed.DEMO_USERS)}")


if __name__ == "__main__":
    main()
