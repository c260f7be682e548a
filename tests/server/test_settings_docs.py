"""Every setting is documented: docs/configuration.md names each `PATCHBAY_*` variable."""

from __future__ import annotations

from pathlib import Path

from server.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_in_configuration_md() -> None:
    prefix = Settings.model_config.get("env_prefix", "")
    text = DOC.read_text()
    missing = [name for name in Settings.model_fields if f"`{prefix}{name.upper()}`" not in text]
    assert missing == [], f"document these settings in {DOC.name}: {missing}"
