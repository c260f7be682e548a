"""Server settings, read once at start-up from `PATCHBAY_*` variables (and `.env`).

Only the CLI and the app factory construct `Settings`; everything below them receives the
typed object or a value derived from it. Library code never reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATCHBAY_", env_file=".env", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Path("./var")
    database_url: str | None = None
    """SQLAlchemy URL; default SQLite at DATA_DIR/patchbay.db. Plain `postgresql://` gets asyncpg."""
    redis_url: str | None = None
    log_level: LogLevel = "INFO"
    admin_token: SecretStr | None = None
    allow_private_base_urls: bool = False
    allow_plain_http_base_urls: bool = False
    """Allow `http://` base URLs to public hosts (private ones follow ALLOW_PRIVATE_BASE_URLS)."""
    master_key: SecretStr | None = None
    """Vault master keys: `v2:<base64>,v1:<base64>` (first is current) or one bare base64 key."""
    master_key_file: Path | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @property
    def resolved_database_url(self) -> str:
        url = self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'patchbay.db').resolve()}"
        return normalize_database_url(url)


def normalize_database_url(url: str) -> str:
    """Accept the URLs people paste (`postgres://`, `postgresql://`, `sqlite://`) and pick async drivers."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url
