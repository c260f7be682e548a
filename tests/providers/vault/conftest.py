"""Vault fixtures: a static keyring, a vault over the shared `db` fixture, and canary keys."""

from __future__ import annotations

import secrets

import pytest

from foundation.audit import MemoryAudit
from providers.vault.keyring import Keyring, StaticKeys, new_master_key
from providers.vault.store import Vault
from server.db import Database


def canary_key() -> str:
    return "sk-test-CANARY-" + secrets.token_urlsafe(24)


@pytest.fixture
def canary() -> str:
    return canary_key()


@pytest.fixture
def keys() -> StaticKeys:
    return StaticKeys(Keyring((new_master_key("v1"),)))


@pytest.fixture
def audit() -> MemoryAudit:
    return MemoryAudit()


@pytest.fixture
def vault(db: Database, keys: StaticKeys, audit: MemoryAudit) -> Vault:
    return Vault(keys, db.sessions, audit)
