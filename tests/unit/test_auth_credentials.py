"""Password policy, Argon2id hashing and the constant-shape password check."""
import pytest
from argon2 import PasswordHasher

from auth import credentials
from auth.credentials import (MIN_LENGTH, check_password, common_passwords, digest,
                              hash_password, new_secret, password_problems)


# --- policy ------------------------------------------------------------------------

def test_a_long_uncommon_password_is_accepted():
    assert password_problems("caballo-bateria-grapa", "gestor1") == []
    assert password_problems("x" * MIN_LENGTH, "gestor1") == []


@pytest.mark.parametrize("password", ["", "corta", "x" * (MIN_LENGTH - 1)])
def test_shorter_than_ten_characters_is_refused(password):
    assert MIN_LENGTH == 10
    assert any("al menos 10" in p for p in password_problems(password, "gestor1"))


def test_longer_than_the_maximum_is_refused():
    assert any("como máximo" in p for p in password_problems("y" * 257, "gestor1"))


@pytest.mark.parametrize("password", ["supervisor01", "SUPERVISOR01", " supervisor01 "])
def test_the_username_itself_is_refused_whatever_the_case(password):
    problems = password_problems(password, "supervisor01")
    assert any("nombre de usuario" in p for p in problems)


def test_every_listed_common_password_is_refused():
    listed = common_passwords()
    assert len(listed) >= 30 and "contraseña123" in listed
    for word in listed:
        problems = password_problems(word, "someone")
        assert any("común" in p for p in problems), word
    # the comparison ignores case
    assert any("común" in p for p in password_problems("PassWord123", "someone"))


def test_comments_of_the_list_are_not_passwords():
    assert not any(word.startswith("#") for word in common_passwords())


def test_several_problems_are_all_reported():
    # short, equal to the username and (being the username) not common: two problems
    assert len(password_problems("ana", "ana")) == 2


# --- hashing -----------------------------------------------------------------------

def test_hashes_are_argon2id_salted_and_verify():
    first, second = hash_password("caballo-bateria-grapa"), hash_password("caballo-bateria-grapa")
    assert first.startswith("$argon2id$") and second.startswith("$argon2id$")
    assert first != second                       # a fresh salt each time
    assert "caballo-bateria-grapa" not in first
    assert check_password(first, "caballo-bateria-grapa") is True
    assert check_password(first, "caballo-bateria-grapX") is False


@pytest.mark.parametrize("stored", ["", "not-a-hash", "$argon2id$v=19$garbage"])
def test_a_corrupt_stored_hash_is_a_refusal_not_a_crash(stored):
    assert check_password(stored, "caballo-bateria-grapa") is False


class _CountingHasher:
    """Delegates to the real Argon2 hasher, counting verifications."""

    def __init__(self, real: PasswordHasher):
        self.real = real
        self.verified = []

    def verify(self, stored, password):
        self.verified.append(stored)
        return self.real.verify(stored, password)

    def hash(self, password):
        return self.real.hash(password)


def test_unknown_user_costs_one_verify_and_is_refused(monkeypatch):
    spy = _CountingHasher(credentials._hasher)
    monkeypatch.setattr(credentials, "_hasher", spy)
    assert check_password(None, "anything-at-all") is False
    assert spy.verified == [credentials._DUMMY_HASH]
    assert credentials._DUMMY_HASH.startswith("$argon2id$")


def test_unknown_user_is_refused_even_with_the_dummy_password(monkeypatch):
    """The dummy hash's own password must never let an unknown user in."""
    spy = _CountingHasher(credentials._hasher)
    monkeypatch.setattr(credentials, "_hasher", spy)
    assert check_password(None, "recaudo-dummy-password-for-timing") is False
    assert len(spy.verified) == 1


def test_wrong_password_of_a_known_user_also_costs_one_verify(monkeypatch):
    stored = hash_password("caballo-bateria-grapa")
    spy = _CountingHasher(credentials._hasher)
    monkeypatch.setattr(credentials, "_hasher", spy)
    assert check_password(stored, "otra-cosa-distinta") is False
    assert spy.verified == [stored]


# --- secrets -----------------------------------------------------------------------

def test_secrets_are_random_and_stored_as_sha256_digests():
    one, two = new_secret("rt_"), new_secret("rt_")
    assert one != two and one.startswith("rt_") and len(one) > 40
    assert len(digest(one)) == 64 and digest(one) == digest(one) and digest(one) != digest(two)
