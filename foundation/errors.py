"""The request-error hierarchy: a caller asked for something that cannot be done.

Every package's service layer raises these and every surface maps `code` to its own answer
(an HTTP status, a CLI exit code), so a package never needs to know which surface called it.
A provider's failure is not one of these: that is `providers.errors.ProviderError`.
"""

from __future__ import annotations


class RequestError(Exception):
    """A caller's request that cannot be honoured (a bad value, a missing or duplicate record).

    `code` is a stable name the surfaces map to an HTTP status or an exit code. Messages name
    what was asked for, never a secret. `param` names the request field at fault (`base_url`,
    `chains.chat`) when there is one.
    """

    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class NotFoundError(RequestError):
    code = "not_found"


class ConflictError(RequestError):
    code = "conflict"


class ForbiddenError(RequestError):
    """The caller is known but its role does not allow the action (a 403)."""

    code = "forbidden"
