"""Local mail servers for `make up`, the tests and the benchmark (not for production).

    python -m messaging.localmail imap --dir DIR --port PORT [--user ADDR:PASSWORD ...]
        Debian's dovecot serving IMAP on 127.0.0.1:PORT (no TLS on loopback), users from
        a passwd-file, Maildir under DIR/users. Messages dropped as .eml files into
        DIR/spool/<user>/ (the demo seed does) are APPENDed once it answers.
    python -m messaging.localmail smtp --dir DIR --port PORT
        an aiosmtpd sink on 127.0.0.1:PORT that keeps every message as DIR/*.eml
        (envelope recipients in an X-Sink-Rcpt header). Recipients whose local part
        starts with "tempfail" are answered 451 the first two times, "permfail" 550:
        how tests make a server fail.

dovecot refuses to run its login processes as root: started by root, the mail and
login processes run as Debian's own unprivileged ``dovecot``/``dovenull`` users;
started by anyone else, everything runs as that user. Those users must be able to walk
down to dovecot's files: a checkout inside a private folder (a 0700 temporary clone) has
them served from ``<system temp>/recaudo-dovecot-<port>`` instead (``served``); the
spool stays under DIR. Ports below 1024 are never used.
"""
from __future__ import annotations

import argparse
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"

CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:{dir}/users/%u/Maildir
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users.passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/users/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  chroot =
}}
"""


def listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_listening(port: int, proc: subprocess.Popen | None = None, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not listening(port):
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on port {port}")
        time.sleep(0.1)


def _others_may_walk(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents) if p.exists())


def served(directory: Path, port: int) -> Path:
    """Where dovecot's own files (configuration, users, Maildirs, log) live for DIR."""
    directory = directory.resolve()
    if os.geteuid() != 0 or _others_may_walk(directory.parent):
        return directory
    return Path(tempfile.gettempdir()) / f"recaudo-dovecot-{port}"


def write_dovecot(directory: Path, port: int, users: dict[str, str]) -> Path:
    """Write dovecot's configuration and passwd-file (under ``served``); the config's path."""
    (directory / "spool").mkdir(parents=True, exist_ok=True)
    directory = served(directory, port)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    for sub in ("run", "state", "users"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    passwd = directory / "users.passwd"
    known = {}
    if passwd.exists():
        for line in passwd.read_text().splitlines():
            if ":" in line:
                name, rest = line.split(":", 1)
                known[name] = rest
    for user, password in users.items():
        known[user] = "{PLAIN}" + password + "::::::"
    passwd.write_text("".join(f"{u}:{rest}\n" for u, rest in known.items()))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("dovecot")
        internal, group, login = "dovecot", "dovecot", "dovenull"
        uid, gid = owner.pw_uid, owner.pw_gid
        for path in [directory / "users", *(directory / "users").rglob("*")]:
            os.chown(path, uid, gid)
    else:
        me = pwd.getpwuid(os.getuid())
        internal = login = me.pw_name
        group = me.pw_name
        uid, gid = me.pw_uid, me.pw_gid
    conf = directory / "dovecot.conf"
    conf.write_text(CONF.format(dir=directory, port=port, internal=internal,
                                internal_group=group, login=login, uid=uid, gid=gid))
    return conf


def start_dovecot(directory: Path, port: int, users: dict[str, str]) -> subprocess.Popen:
    """Start dovecot in the foreground of a child process and wait until it answers."""
    if listening(port):
        raise RuntimeError(f"port {port} is already taken")
    conf = write_dovecot(directory, port, users)
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_listening(port, proc)
    except RuntimeError:
        stop(proc)
        log = served(directory, port) / "dovecot.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"dovecot did not start on port {port}:\n{tail}") from None
    return proc


def start_sink(directory: Path, port: int) -> subprocess.Popen:
    """The SMTP sink as a child process (its own event loop, whatever the caller runs)."""
    if listening(port):
        raise RuntimeError(f"port {port} is already taken")
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "messaging.localmail", "smtp", "--dir",
                             str(directory), "--port", str(port)], stdin=subprocess.DEVNULL,
                            start_new_session=True)
    wait_listening(port, proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def deliver_spool(directory: Path, port: int, users: dict[str, str]) -> int:
    """APPEND every DIR/spool/<user>/*.eml to that user's INBOX, then remove the file."""
    from imapclient import IMAPClient

    delivered = 0
    for folder in sorted((directory / "spool").glob("*")):
        files = sorted(folder.glob("*.eml"))
        if not files or folder.name not in users:
            continue
        client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=20)
        try:
            client.login(folder.name, users[folder.name])
            for path in files:
                client.append("INBOX", path.read_bytes())
                path.unlink()
                delivered += 1
        finally:
            client.logout()
    return delivered


def _read_users(directory: Path, port: int, extra: list[str]) -> dict[str, str]:
    users = {}
    passwd = served(directory, port) / "users.passwd"
    if passwd.exists():
        for line in passwd.read_text().splitlines():
            name, _, rest = line.partition(":")
            if rest.startswith("{PLAIN}"):
                users[name] = rest[len("{PLAIN}"):].split(":", 1)[0]
    for item in extra:
        user, _, password = item.partition(":")
        users[user] = password
    return users


# --- the SMTP sink -----------------------------------------------------------------------------

class SinkHandler:
    """Keeps each message as a file; fails recipients on request (see the module doc)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.tries: dict[str, int] = {}
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("permfail"):
            return "550 5.1.1 Buzón inexistente (sink)"
        if local.startswith("tempfail"):
            self.tries[address] = self.tries.get(address, 0) + 1
            if self.tries[address] <= 2:
                return "451 4.3.0 Inténtelo más tarde (sink)"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = f"{time.time_ns()}-{os.getpid()}-{self.count}.eml"
        header = f"X-Sink-Rcpt: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        tmp = self.directory / (name + ".tmp")
        tmp.write_bytes(header + envelope.original_content)
        tmp.rename(self.directory / name)   # a reader never sees half a file
        return f"250 2.0.0 Ok: queued as {name}"


def run_sink(directory: Path, port: int) -> None:
    from aiosmtpd.controller import Controller

    directory.mkdir(parents=True, exist_ok=True)
    controller = Controller(SinkHandler(directory), hostname="127.0.0.1", port=port,
                            data_size_limit=60 * 1024 * 1024)
    controller.start()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    try:
        while not stopping:
            time.sleep(0.2)
    finally:
        controller.stop()


def run_imap(directory: Path, port: int, extra_users: list[str]) -> None:
    users = _read_users(directory, port, extra_users)
    proc = start_dovecot(directory, port, users)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    try:
        deliver_spool(directory, port, users)
        while not stopping and proc.poll() is None:
            time.sleep(0.5)
            if any((directory / "spool").glob("*/*.eml")):
                deliver_spool(directory, port, users)
    finally:
        stop(proc)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m messaging.localmail", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("server", choices=("imap", "smtp"))
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--user", action="append", default=[], help="ADDRESS:PASSWORD")
    args = parser.parse_args(argv)
    if args.port < 1024:
        parser.error("use a port of 1024 or above")
    if args.server == "smtp":
        run_sink(args.dir.resolve(), args.port)
    else:
        run_imap(args.dir.resolve(), args.port, args.user)
    return 0


if __name__ == "__main__":
    sys.exit(main())
