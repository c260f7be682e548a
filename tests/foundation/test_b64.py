"""foundation.b64: pybase64 against the standard library, which it stands in for on voice paths.

The voice wire refuses audio that is not strict base64; the faster codec must never accept
what the standard library's strict mode refuses, nor decode anything to different bytes.
"""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foundation import b64

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
NEAR_BASE64 = st.text(alphabet=ALPHABET + "=-_ \n\t@é", max_size=64)
"""Mostly base64 characters, with padding anywhere, the URL-safe pair, whitespace and junk."""


@given(st.binary(max_size=4096))
def test_encode_is_the_standard_encoding_and_decode_reverses_it(data: bytes) -> None:
    text = b64.encode(data)
    assert text == base64.b64encode(data).decode("ascii")
    assert b64.decode(text) == data
    assert b64.decode(text.encode("ascii")) == data


@given(st.one_of(NEAR_BASE64, st.builds(lambda d: base64.b64encode(d).decode(), st.binary(max_size=48))))
def test_decode_accepts_nothing_the_strict_standard_decoder_refuses(text: str) -> None:
    try:
        decoded = b64.decode(text)
    except b64.Error:
        return
    assert binascii.a2b_base64(text, strict_mode=True) == decoded


@pytest.mark.parametrize(
    "text", ["AAA", "A===", "AA=A", "AA==AA==", " AAAA", "AAAA\n", "@@@@", "QUJD-A==", "é"]
)
def test_malformed_text_is_an_error(text: str) -> None:
    with pytest.raises(b64.Error):
        b64.decode(text)
    assert issubclass(b64.Error, ValueError)
