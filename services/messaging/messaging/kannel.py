"""The local SMS gateway for `make up`, the tests and the benchmark: Debian's Kannel.

    python -m messaging.kannel --dir DIR --port PORT --callback URL --token TOKEN

runs, unprivileged and in the foreground, Kannel's ``bearerbox`` (the SMSC connections)
and ``smsbox`` (the HTTP ``sendsms`` interface on 127.0.0.1:PORT) with a configuration
written under DIR, and the ``fakesmsc`` test SMSC from ``kannel-extras`` as the phone
network: every MT it receives is a line ``Got message N: <from to text ...>`` in
DIR/fakesmsc.log, and each one is acknowledged with a delivery report "delivered" (the
fake SMSC's own DLR). Ports from PORT up: PORT sendsms, +1 bearerbox admin, +2 the
smsbox link, +3 the fake SMSC MT go out on, +4 a second fake SMSC ``inject`` connects to
once to hand Kannel a message from a phone (an MO), which Kannel posts to messaging's
``/kannel/mo`` (its ``get-url``). Production points the institution's SMS settings at
its own Kannel (or any gateway speaking the sendsms interface) instead.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from .localmail import listening, stop, wait_listening

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
#: the sendsms account messaging uses against the local Kannel
USER, PASSWORD = "recaudo", "recaudo-local"
#: the token the local Kannel's get-url carries (the demo institution's ``inbound_token``)
TOKEN = "recaudo-local-sms"

CONF = """\
group = core
admin-port = {admin}
admin-password = {password}
admin-allow-ip = "127.0.0.1"
smsbox-port = {smsbox}
box-allow-ip = "127.0.0.1"
log-file = "{dir}/bearerbox.log"
log-level = 1
access-log = "{dir}/access.log"
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {mt}
connect-allow-ip = "127.0.0.1"

group = smsc
smsc = fake
smsc-id = mo
port = {mo}
connect-allow-ip = "127.0.0.1"
allowed-smsc-id = mo

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{dir}/smsbox.log"
log-level = 1
mo-recode = true
# a callback that fails (messaging restarting, a kept-alive connection it closed) is tried
# again rather than lost
http-request-retry = 5
http-queue-delay = 1

group = sendsms-user
username = {user}
password = {password}
user-allow-ip = "127.0.0.1"
forced-smsc = fake
concatenation = true
max-messages = 10

group = sms-service
keyword = default
catch-all = true
max-messages = 0
omit-empty = true
get-url = "{callback}/kannel/mo?token={token}&from=%p&to=%P&text=%a&id=%I"
"""


def ports(port: int) -> dict[str, int]:
    return {"sendsms": port, "admin": port + 1, "smsbox": port + 2, "mt": port + 3,
            "mo": port + 4}


def write_config(directory: Path, port: int, callback: str, token: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "kannel.conf"
    conf.write_text(CONF.format(dir=directory, user=USER, password=PASSWORD,
                                callback=callback.rstrip("/"), token=token, **ports(port)))
    return conf


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def start(directory: Path, port: int, callback: str, token: str) -> list[subprocess.Popen]:
    """bearerbox, the fake SMSC and smsbox, started in order; answers once sendsms answers."""
    p = ports(port)
    for name, number in p.items():
        if listening(number):
            raise RuntimeError(f"port {number} ({name}) is already taken")
    directory = directory.resolve()
    conf = write_config(directory, port, callback, token)
    procs = [_spawn([BEARERBOX, str(conf)], directory / "bearerbox.out")]
    try:
        wait_listening(p["admin"], procs[0])
        wait_listening(p["mt"], procs[0])
        # the phone network: prints every MT it gets (it sends nothing itself: -m 0)
        procs.append(_spawn([FAKESMSC, "-H", "127.0.0.1", "-r", str(p["mt"]), "-m", "0",
                             "0 0 text nop"], directory / "fakesmsc.log"))
        procs.append(_spawn([SMSBOX, str(conf)], directory / "smsbox.out"))
        wait_listening(p["sendsms"], procs[-1])
    except RuntimeError:
        stop_all(procs)
        tail = (directory / "bearerbox.log").read_text()[-2000:] \
            if (directory / "bearerbox.log").exists() else ""
        raise RuntimeError(f"Kannel did not start on port {port}:\n{tail}") from None
    return procs


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        stop(proc)


def inject(port: int, sender: str, receiver: str, text: str) -> None:
    """A message from a phone: one-shot fakesmsc on the MO SMSC (Kannel then calls get-url)."""
    from urllib.parse import quote_plus

    line = f"{sender} {receiver} data {quote_plus(text.encode('latin-1', 'replace'))}"
    if any(ord(c) > 255 for c in text):
        line = f"{sender} {receiver} ucs2 {quote_plus(text.encode('utf-16-be'))}"
    proc = subprocess.Popen([FAKESMSC, "-H", "127.0.0.1", "-r", str(ports(port)["mo"]),
                             "-i", "0", "-m", "1", line], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:   # it stays connected after sending (waiting for replies): stopped once it sent
        for out in proc.stdout:
            if b"sent message" in out:
                return
        raise RuntimeError("fakesmsc could not hand the message to Kannel")
    finally:
        stop(proc)
        proc.stdout.close()


def received(directory: Path) -> list[str]:
    """The MT lines the fake SMSC printed so far (``<from to text ...>``)."""
    log = directory / "fakesmsc.log"
    if not log.exists():
        return []
    return [line.split("Got message", 1)[1].split(": ", 1)[1]
            for line in log.read_text(errors="replace").splitlines()
            if "Got message" in line]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m messaging.kannel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--callback", required=True, help="messaging's SMS callback base URL")
    parser.add_argument("--token", required=True)
    args = parser.parse_args(argv)
    if args.port < 1024:
        parser.error("use a port of 1024 or above")
    procs = start(args.dir, args.port, args.callback, args.token)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    try:
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.5)
    finally:
        stop_all(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
