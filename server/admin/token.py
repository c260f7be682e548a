"""Where the admin token comes from: `PATCHBAY_ADMIN_TOKEN`, else a generated file in DATA_DIR.

With the variable set, it is the token and no file is read or written. Without it (the
embedded default) the first start generates `DATA_DIR/admin.token` (mode 0600, written
atomically and exclusively so concurrent first starts agree on one token) and logs its path,
never its content; `patchbay admin token` prints it. With `PATCHBAY_ADMIN_API=false` there is
no token and the admin API answers 503. Nothing here reads the environment.

A token shorter than `MIN_LENGTH` refuses start-up: an empty `PATCHBAY_ADMIN_TOKEN=` once
meant `Authorization: Bearer ` (nothing after it) opened the whole admin API.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from server.settings import Settings

log = logging.getLogger(__name__)

TOKEN_FILENAME = "admin.token"
ENV_SOURCE = "PATCHBAY_ADMIN_TOKEN"
MIN_LENGTH = 32
"""Shortest token accepted from either source; the generated one is 51 characters."""


class AdminTokenError(RuntimeError):
    """The token file exists but cannot be used; the message names the path, never the content."""


@dataclass(frozen=True, slots=True)
class AdminToken:
    value: SecretStr
    source: str
    """`PATCHBAY_ADMIN_TOKEN`, or the path of the token file."""

    @property
    def from_file(self) -> bool:
        return self.source != ENV_SOURCE


def token_path(settings: Settings) -> Path:
    return settings.data_dir / TOKEN_FILENAME


def load_admin_token(settings: Settings, *, create: bool = True) -> AdminToken | None:
    """The token the admin API accepts, or None when the admin API is off.

    `create=False` returns None instead of generating a missing file.
    """
    if not settings.admin_api:
        return None
    if settings.admin_token is not None:
        length = len(settings.admin_token.get_secret_value().strip())
        if length < MIN_LENGTH:
            raise AdminTokenError(
                f"{ENV_SOURCE} is {'empty' if length == 0 else f'only {length} characters'}; set it to "
                f"{MIN_LENGTH} or more random characters (e.g. `openssl rand -hex 32`), or unset it to use "
                "a generated token file"
            )
        return AdminToken(settings.admin_token, ENV_SOURCE)
    path = token_path(settings)
    if not path.exists():
        if not create:
            return None
        try:
            _write_exclusive(path, "pbadmin-" + secrets.token_urlsafe(32))
            log.warning(
                "generated an admin token file; `patchbay admin token` prints it",
                extra={"fields": {"path": str(path.resolve())}},
            )
        except FileExistsError:
            pass  # another process generated it first; use theirs
    return AdminToken(SecretStr(_read(path)), str(path))


def _read(path: Path) -> str:
    try:
        st = path.stat()
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AdminTokenError(f"cannot read the admin token file {path}: {type(exc).__name__}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "admin token file is readable by group or others; chmod 600 it",
            extra={"fields": {"path": str(path), "mode": oct(stat.S_IMODE(st.st_mode))}},
        )
    if len(text) < MIN_LENGTH:
        raise AdminTokenError(
            f"the admin token file {path} holds no usable token ({MIN_LENGTH} characters or more); "
            "delete it to have a new one generated"
        )
    return text


def _write_exclusive(path: Path, token: str) -> None:
    """Write a temp file (0600), then hard-link it into place: readers never see a partial file,
    and an existing token is never replaced (`FileExistsError`)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(token + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:
            # Filesystems without hard links: create the target exclusively instead.
            with os.fdopen(
                os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="ascii"
            ) as out:
                out.write(token + "\n")
    finally:
        tmp.unlink(missing_ok=True)
