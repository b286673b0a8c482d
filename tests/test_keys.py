"""KeyStore: keys are shown once, stored hashed, verified by hash, revocable."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, select, update

from kinema.errors import InvalidRequest, NotFound
from kinema.keys import KeyStore
from kinema.schema import api_keys

if TYPE_CHECKING:
    from tests.conftest import FakeClock


@pytest.fixture
def keys(engine: Engine, fake_clock: FakeClock) -> KeyStore:
    return KeyStore(engine, clock=fake_clock)


def test_a_new_key_verifies_and_is_stored_only_as_its_hash(keys: KeyStore, engine: Engine):
    key, plaintext = keys.create("laptop")

    assert plaintext.startswith("kin_")
    assert len(plaintext) == 4 + 43  # 32 random bytes, url-safe base64 without padding
    assert key.prefix == plaintext[:12]
    assert key.name == "laptop"
    assert key.revoked_at is None
    assert keys.verify(plaintext) == key
    with engine.connect() as connection:
        row = connection.execute(select(api_keys)).one()
    assert row.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in [str(value) for value in row]


def test_keys_are_unique_and_listed_oldest_first(keys: KeyStore, fake_clock: FakeClock):
    first, first_secret = keys.create("a")
    fake_clock.advance(1)
    second, second_secret = keys.create("b")

    assert first_secret != second_secret
    assert [k.id for k in keys.list()] == [first.id, second.id]
    verified = keys.verify(second_secret)
    assert verified is not None and verified.id == second.id


@pytest.mark.parametrize("token", ["", "kin_", "kin_nope", "Bearer kin_x", "x" * 1000])
def test_unknown_or_malformed_tokens_do_not_verify(keys: KeyStore, token: str):
    keys.create("real")
    assert keys.verify(token) is None


@pytest.mark.parametrize("how", ["id", "prefix", "plaintext"])
def test_a_revoked_key_no_longer_verifies(keys: KeyStore, how: str):
    key, plaintext = keys.create("old")
    kept, kept_secret = keys.create("kept")
    handle = {"id": key.id, "prefix": key.prefix, "plaintext": plaintext}[how]

    revoked = keys.revoke(handle)

    assert revoked.id == key.id
    assert revoked.revoked_at is not None
    assert keys.verify(plaintext) is None
    assert keys.verify(kept_secret) == kept
    assert keys.revoke(key.id) == revoked  # twice is harmless
    assert {k.id: k.revoked for k in keys.list()} == {key.id: True, kept.id: False}


def test_revoking_an_unknown_key_is_not_found(keys: KeyStore):
    with pytest.raises(NotFound):
        keys.revoke("kin_missing")


def test_an_ambiguous_prefix_revokes_nothing(keys: KeyStore, engine: Engine):
    first, _ = keys.create("a")
    second, _ = keys.create("b")
    with engine.begin() as connection:  # 48 random bits make this rare, not impossible
        connection.execute(
            update(api_keys).where(api_keys.c.id == second.id).values(prefix=first.prefix)
        )
    with pytest.raises(InvalidRequest):
        keys.revoke(first.prefix)
    assert not any(k.revoked for k in keys.list())


def test_last_use_is_recorded_at_most_once_a_minute(keys: KeyStore, fake_clock: FakeClock):
    _, plaintext = keys.create("ci")
    start = fake_clock.now

    keys.verify(plaintext)
    assert keys.list()[0].last_used_at == start
    fake_clock.advance(30)
    keys.verify(plaintext)
    assert keys.list()[0].last_used_at == start
    fake_clock.advance(31)
    keys.verify(plaintext)
    assert keys.list()[0].last_used_at == fake_clock.now
