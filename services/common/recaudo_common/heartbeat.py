"""The heartbeat file a process touches while its event loop turns (``RECAUDO_HEARTBEAT_FILE``),
and its age, read by liveness probes (``healthcheck --live``) and the runner's supervisor.
Written by ``resilience.Heartbeat`` in the services; kept free of nameko so that probes and
the runner read it without importing eventlet."""
from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: seconds between heartbeats, and the age after which a process counts as hung (generous:
#: a long CPU-bound stretch, parsing a large import, holds eventlet's loop for seconds)
HEARTBEAT_SECONDS = 2.0
HEARTBEAT_STALE_SECONDS = 60.0


def beat(path: str) -> None:
    """Record that this process's loop ran just now."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()
    except OSError as exc:  # a read-only disk is no reason to stop serving
        log.warning("heartbeat file %s not written: %s", path, exc)


def heartbeat_age(path: str) -> float | None:
    """Seconds since the last heartbeat in ``path``; None when there is none."""
    try:
        return max(0.0, time.time() - Path(path).stat().st_mtime)
    except OSError:
        return None
