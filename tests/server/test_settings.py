"""Settings refuse what cannot be safe, at start-up, with a message naming the setting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.settings import Settings


def test_env_reference_allowlist_never_takes_the_servers_own_settings() -> None:
    assert Settings(env_reference_allow="OPENAI_API_KEY, ANTHROPIC_API_KEY").env_references == {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
    }
    assert Settings().env_references == frozenset()
    with pytest.raises(
        ValidationError, match="PATCHBAY_MASTER_KEY cannot be listed in PATCHBAY_ENV_REFERENCE_ALLOW"
    ):
        Settings(env_reference_allow="OPENAI_API_KEY,PATCHBAY_MASTER_KEY")
