"""Environment references: only allowlisted names, never the server's own `PATCHBAY_*` settings."""

from __future__ import annotations

import pytest

from foundation.errors import RequestError
from routing.env_reference import allowed_environ, check_env_reference, parse_allowlist

ENVIRON = {
    "OPENAI_API_KEY": "sk-listed",
    "AWS_SECRET_ACCESS_KEY": "not-listed",
    "PATCHBAY_MASTER_KEY": "v1:master",
    "patchbay_admin_token": "admin",
}


def test_allowlist_parses_and_refuses_the_servers_own_settings() -> None:
    assert parse_allowlist(" OPENAI_API_KEY, ANTHROPIC_API_KEY ,") == {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"}
    assert parse_allowlist("") == frozenset()
    for listed in ("OPENAI_API_KEY,PATCHBAY_MASTER_KEY", "patchbay_admin_token"):
        with pytest.raises(ValueError, match="PATCHBAY_ENV_REFERENCE_ALLOW"):
            parse_allowlist(listed)


def test_save_time_check_names_the_setting() -> None:
    allowed = frozenset({"OPENAI_API_KEY"})
    assert check_env_reference(" OPENAI_API_KEY ", allowed) == "OPENAI_API_KEY"
    with pytest.raises(RequestError, match="PATCHBAY_ENV_REFERENCE_ALLOW"):
        check_env_reference("AWS_SECRET_ACCESS_KEY", allowed)
    for own in ("PATCHBAY_MASTER_KEY", "patchbay_admin_token"):
        with pytest.raises(RequestError, match="server's own settings") as refused:
            check_env_reference(own, allowed | {own})
        assert refused.value.param == "env_reference"


def test_read_side_sees_only_allowlisted_names() -> None:
    view = allowed_environ({"OPENAI_API_KEY", "PATCHBAY_MASTER_KEY", "UNSET_KEY"}, ENVIRON)
    assert view == {"OPENAI_API_KEY": "sk-listed"}
