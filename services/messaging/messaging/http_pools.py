"""Kept-alive HTTP connections under eventlet (the SMS gateway's, partners' endpoints').

Before reusing a kept connection urllib3 asks whether the peer closed it: a zero-timeout
``select`` that, under eventlet's green ``select``, goes through the hub and cost as much
as the request (a tenth of messaging's CPU during a campaign). A zero-timeout ``poll`` of
the real module answers the same without waiting, so it cannot block the hub.
"""
from __future__ import annotations

import urllib3
from eventlet import patcher

_select = patcher.original("select")
_GONE = _select.POLLIN | _select.POLLERR | _select.POLLHUP | getattr(_select, "POLLRDHUP", 0)


class _QuickDropCheck:
    @property
    def is_connected(self) -> bool:
        if self.sock is None:
            return False
        poller = _select.poll()
        poller.register(self.sock.fileno(), _GONE)
        # readable while idle: the peer closed it (or sent what nobody asked for)
        return not poller.poll(0)


class KeptHTTPConnection(_QuickDropCheck, urllib3.connection.HTTPConnection):
    pass


class KeptHTTPSConnection(_QuickDropCheck, urllib3.connection.HTTPSConnection):
    pass
