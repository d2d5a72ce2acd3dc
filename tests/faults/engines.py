"""Private RabbitMQ and PostgreSQL for the fault suite, so that it can stop and restart
them without touching the machine's own (which other suites and people use).

``PrivateRabbit`` is a second ``rabbitmq-server`` node (its own ``RABBITMQ_NODENAME``,
AMQP and distribution ports, config, plugins and data directory, Erlang cookie in its
own HOME); ``PrivatePostgres`` a cluster made with ``initdb`` and run by ``pg_ctl`` on
its own port and socket directory. Both live under one directory (``<var>/faults``) and
are shut down and removed by ``stop()``.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port: int, seconds: float, open_: bool = True) -> None:
    deadline = time.monotonic() + seconds
    while port_open(port) != open_:
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} did not {'open' if open_ else 'close'} "
                               f"in {seconds:g} s")
        time.sleep(0.2)


def _tool(name: str) -> str:
    """A RabbitMQ tool, run directly (the /usr/sbin wrappers switch to the rabbitmq user,
    who cannot write our directories)."""
    path = RABBIT_BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


class PrivateRabbit:
    def __init__(self, root: Path, port: int, dist_port: int):
        self.root, self.port = root / "rabbit", port
        self.node = f"recaudo-faults-{port}@localhost"
        self.env = dict(
            os.environ, HOME=str(self.root), RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(port), RABBITMQ_DIST_PORT=str(dist_port),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.root / "rabbitmq-env.conf"),
            RABBITMQ_MNESIA_BASE=str(self.root / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_PID_FILE=str(self.root / "rabbit.pid"),
            ERL_EPMD_ADDRESS="127.0.0.1")

    @property
    def amqp_uri(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken: another private RabbitMQ?")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "rabbitmq-env.conf").write_text("")
        subprocess.run([_tool("rabbitmq-server"), "-detached"], env=self.env, check=True,
                       capture_output=True)
        wait_port(self.port, 120)

    def ctl(self, *args: str) -> None:
        subprocess.run([_tool("rabbitmqctl"), "-n", self.node, *args], env=self.env,
                       check=True, capture_output=True, timeout=120)

    def stop_app(self) -> None:
        self.ctl("stop_app")
        wait_port(self.port, 30, open_=False)

    def start_app(self) -> None:
        self.ctl("start_app")
        wait_port(self.port, 60)

    def reset(self) -> None:
        """Back as a fresh node: every queue, exchange and binding gone (``guest`` and the
        default vhost are made again at start)."""
        self.ctl("stop_app")
        wait_port(self.port, 30, open_=False)
        self.ctl("reset")
        self.start_app()

    def stop(self) -> None:
        try:
            self.ctl("stop")   # the whole node, not only the app
        except Exception:  # already gone
            pass


class PrivatePostgres:
    def __init__(self, root: Path, port: int):
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # run as postgres, the cluster must be reachable by it: the checkout may sit under a
        # directory only root may enter (a fresh clone in a mktemp folder, a CI workspace)
        self.root = (Path(tempfile.gettempdir()) / f"recaudo-faults-pg-{port}"
                     if self.as_postgres else root / "pg")
        self.port = port
        self.data = self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/recaudo"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True,
                       timeout=120)

    def start(self) -> None:
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken: another private PostgreSQL?")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.pg_ctl("start", "-l", str(self.root / "server.log"))

    def pg_ctl(self, action: str, *args: str) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-t", "60", action,
                  *args)

    def restart(self, mode: str) -> None:
        """``pg_ctl restart -m fast`` (clients told) or ``-m immediate`` (as a crash)."""
        self.pg_ctl("restart", "-m", mode, "-l", str(self.root / "server.log"))

    def stop(self) -> None:
        try:
            self.pg_ctl("stop", "-m", "immediate")
        except Exception:  # already gone
            pass
