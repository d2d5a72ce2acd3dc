"""The gateway's identity cache on its own (no broker: the listener is marked as
consuming by hand; tests/integration/test_identity_cache_broker.py drives the real one)."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from gateway.identity_cache import IdentityCache


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _cache(ttl=30.0, size=100, wall=None):
    clock = Clock()
    cache = IdentityCache("amqp://unused", ttl=ttl, max_entries=size, clock=clock,
                          wall_clock=wall or (lambda: 0.0))
    cache._pid, cache._trusted = os.getpid(), True     # as if the listener were consuming
    return cache, clock


def _resolved(user_id=7, **extra):
    return {"identity": f"signed-{user_id}", "user": {"id": user_id}, **extra}


def test_an_accepted_credential_is_served_until_its_safety_interval_ends():
    cache, clock = _cache(ttl=30)
    cache.store("token", "at_1", _resolved(), cache.generation())
    assert cache.lookup("token", "at_1")["identity"] == "signed-7"
    assert cache.lookup("session", "at_1") is None          # kinds are apart
    clock.now += 30
    assert cache.lookup("token", "at_1") is None
    assert len(cache) == 0


def test_never_past_the_moment_auth_said_the_credential_ends():
    wall = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    cache, clock = _cache(ttl=30, wall=lambda: wall.timestamp())
    until = (wall + timedelta(seconds=5)).isoformat()
    cache.store("token", "at_1", _resolved(cache_until=until), cache.generation())
    clock.now += 4.9
    assert cache.lookup("token", "at_1") is not None
    clock.now += 0.2
    assert cache.lookup("token", "at_1") is None


def test_an_event_forgets_by_credential_by_user_or_everything():
    from gateway.identity_cache import digest

    cache, _ = _cache()
    for user_id, secret in ((1, "s1"), (1, "s2"), (2, "s3"), (3, "s4")):
        cache.store("session", secret, _resolved(user_id), cache.generation())
    cache.forget({"credentials": [digest("s1")], "user_ids": [], "everyone": False})
    assert cache.lookup("session", "s1") is None and cache.lookup("session", "s2")
    cache.forget({"credentials": [], "user_ids": [1, 2], "everyone": False})
    assert [cache.lookup("session", s) is None for s in ("s2", "s3", "s4")] == [True, True, False]
    cache.forget({"credentials": [], "user_ids": [], "everyone": True})
    assert len(cache) == 0


def test_an_answer_fetched_while_an_event_arrived_is_not_kept():
    cache, _ = _cache()
    generation = cache.generation()          # the request asks auth ...
    cache.forget({"credentials": [], "user_ids": [99], "everyone": False})  # ... revoked meanwhile
    cache.store("token", "at_1", _resolved(7), generation)
    assert cache.lookup("token", "at_1") is None


def test_nothing_is_kept_or_served_while_the_listener_is_not_consuming():
    cache, _ = _cache()
    cache.store("token", "at_1", _resolved(), cache.generation())
    cache._distrust()                          # what losing the broker connection does
    assert len(cache) == 0
    cache.store("token", "at_1", _resolved(), cache.generation())
    assert cache.lookup("token", "at_1") is None and len(cache) == 0


def test_it_never_grows_past_its_size():
    cache, _ = _cache(size=3)
    for n in range(10):
        cache.store("token", f"at_{n}", _resolved(n), cache.generation())
    assert len(cache) == 3
    assert cache.lookup("token", "at_9") is not None and cache.lookup("token", "at_0") is None


def test_a_zero_interval_turns_it_off():
    cache, _ = _cache(ttl=0)
    cache.store("token", "at_1", _resolved(), cache.generation())
    assert cache.lookup("token", "at_1") is None
