"""The one error a voice session raises to its transport: a client request it cannot honour."""

from __future__ import annotations


class ClientError(Exception):
    """A client request the session cannot honour; the session itself is unharmed."""

    def __init__(self, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
