"""The credential seam between the vault and the adapters.

An adapter sees only a `Credential`: it can show a fingerprint and, inside the one function
that builds a request's auth header, reveal the plaintext. Nothing else ever holds it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Credential(Protocol):
    @property
    def fingerprint(self) -> str: ...

    def reveal(self, purpose: str) -> str:
        """Return the plaintext for immediate use on the wire; `purpose` is audited."""
        ...


class NoCredential:
    """For endpoints that take no key (a local Ollama, the internal engines)."""

    fingerprint = "none"

    def reveal(self, purpose: str) -> str:
        return ""

    def __repr__(self) -> str:
        return "NoCredential()"
