"""Base64 for audio on the voice paths: every 20 ms frame in, every audio chunk out.

pybase64's SIMD codec decodes a 20 ms frame of 24 kHz PCM16 (1,280 characters) in about a
sixth of the time `binascii` takes, and encodes output chunks more than ten times faster.
`decode` is strict: it accepts only the standard alphabet with correct padding and no
whitespace, and never accepts what the standard library's strict mode would refuse
(tests/foundation/test_b64.py checks both against each other).
"""

from __future__ import annotations

import binascii

import pybase64

Error = binascii.Error
"""What `decode` raises for text that is not strict base64 (a `ValueError`)."""


def decode(text: str | bytes) -> bytes:
    """Strict base64 to bytes; `Error` for anything else (non-ASCII text included)."""
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error, and ValueError for non-ASCII str
        raise Error(str(exc)) from None


def encode(data: bytes) -> str:
    """Bytes to standard base64 text, padded, no newlines."""
    return pybase64.b64encode_as_string(data)
