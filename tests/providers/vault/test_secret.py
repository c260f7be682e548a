"""The redacted Secret type and fingerprints."""

from __future__ import annotations

import copy
import io
import json
import logging
import pickle

import orjson
import pydantic
import pytest

from providers.vault.secret import REDACTED, Secret, fingerprint
from server.logs import JsonFormatter

CANARY = "sk-test-CANARY-0123456789abcdefXYZ"


class KeyBody(pydantic.BaseModel):
    key: Secret


def test_every_text_form_is_redacted() -> None:
    s = Secret(CANARY)
    forms = [
        repr(s),
        str(s),
        f"{s}",
        f"{s!r}",
        f"{s:>20}",
        "%s" % s,  # noqa: UP031 - the logging-style path on purpose
        "{}".format(s),  # noqa: UP032 - str.format on purpose
        repr([s]),
        repr({"k": s}),
    ]
    for text in forms:
        assert CANARY not in text
        assert REDACTED in text
    assert s.expose() == CANARY


def test_log_output_is_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.vault.secret")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        s = Secret(CANARY)
        logger.info("got %s and %r", s, s, extra={"fields": {"key": s}})
        try:
            raise ValueError(s)
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert out.count(REDACTED) >= 4
    assert CANARY not in out


def test_json_serialisation_is_redacted_or_refused() -> None:
    s = Secret(CANARY)
    body = KeyBody(key=CANARY)  # type: ignore[arg-type]
    assert isinstance(body.key, Secret) and body.key.expose() == CANARY
    assert body.model_dump() == {"key": REDACTED}
    assert json.loads(body.model_dump_json()) == {"key": REDACTED}
    assert CANARY not in repr(body)
    assert KeyBody.model_validate_json(json.dumps({"key": CANARY})).key.expose() == CANARY
    schema = KeyBody.model_json_schema()["properties"]["key"]
    assert schema["writeOnly"] is True
    with pytest.raises(TypeError):
        json.dumps({"key": s})
    with pytest.raises(TypeError):
        orjson.dumps({"key": s})
    assert CANARY not in orjson.dumps({"key": s}, default=str).decode()


def test_pydantic_rejects_empty_keys() -> None:
    with pytest.raises(pydantic.ValidationError) as err:
        KeyBody(key="")  # type: ignore[arg-type]
    assert CANARY not in str(err.value)


def test_pickle_refused_and_copies_share() -> None:
    s = Secret(CANARY)
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert copy.copy(s) is s and copy.deepcopy(s) is s


def test_construction_checks() -> None:
    with pytest.raises(ValueError):
        Secret("   ")
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (CANARY, "sk-tes…fXYZ"),
        ("sk-or-v1-" + "a" * 56 + "wxyz", "sk-or-v1…wxyz"),
        ("AIzaSyD0123456789", "AIz…6789"),
        ("short-key", "…****"),
    ],
)
def test_fingerprint_shows_a_short_prefix_and_the_last_four(key: str, expected: str) -> None:
    assert fingerprint(key) == expected
    assert Secret(key).fingerprint == expected


def test_fingerprint_never_reveals_more_than_a_fifth_plus_four() -> None:
    for n in range(12, 80):
        key = "".join(chr(ord("A") + i % 26) for i in range(n))
        fp = fingerprint(key)
        shown = len(fp.replace("…", ""))
        assert shown <= n // 5 + 4
        assert len(fp) <= 32
