from __future__ import annotations

import pytest

from providers.auth import add_auth_header
from providers.contract import AuthStyle
from providers.credentials import NoCredential


class Recording:
    fingerprint = "sk-…abcd"

    def __init__(self, value: str) -> None:
        self.value = value
        self.purposes: list[str] = []

    def reveal(self, purpose: str) -> str:
        self.purposes.append(purpose)
        return self.value


@pytest.mark.parametrize(
    ("style", "name", "value"),
    [
        (AuthStyle.BEARER, "authorization", "Bearer k-1"),
        (AuthStyle.X_API_KEY, "x-api-key", "k-1"),
        (AuthStyle.X_GOOG_API_KEY, "x-goog-api-key", "k-1"),
        (AuthStyle.XI_API_KEY, "xi-api-key", "k-1"),
    ],
)
def test_each_style_puts_the_key_in_its_header(style: AuthStyle, name: str, value: str) -> None:
    cred = Recording("k-1")
    headers: dict[str, str] = {}
    add_auth_header(headers, style, cred, "chat")
    assert headers == {name: value}
    assert cred.purposes == ["chat"]


def test_none_style_and_keyless_credentials_add_nothing() -> None:
    cred = Recording("k-1")
    headers: dict[str, str] = {}
    add_auth_header(headers, AuthStyle.NONE, cred, "chat")
    assert headers == {} and cred.purposes == []
    add_auth_header(headers, AuthStyle.BEARER, NoCredential(), "chat")
    assert headers == {}


def test_request_paths_reveal_keys_only_through_add_auth_header() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    callers = sorted(
        str(path.relative_to(root))
        for pkg in ("server", "providers", "voice", "routing", "billing")
        for path in (root / pkg).rglob("*.py")
        if re.search(r"\.reveal\(", path.read_text())
    )
    # The vault's own module defines reveal; the importers compare a stored key in place (vault_keys).
    assert callers == ["providers/auth.py", "server/vault_keys.py"]
