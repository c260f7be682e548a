"""`billing.legacy_billing`: the predecessor's billing rows parsed exactly, every bad line named."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from billing.ledger_types import request_id_of
from billing.legacy_billing import LineError, parse_lines

FIXTURE = Path(__file__).parent / "data" / "legacy_billing.jsonl"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ROW: dict[str, Any] = {
    "orgId": "org_acme",
    "requestId": "gen-1",
    "model": "openai/gpt-4o-mini",
    "promptTokens": 10,
    "completionTokens": 5,
    "costUsd": 0.000025,
    "ts": "2025-12-01T00:00:00Z",
}


def line(**changes: Any) -> str:
    doc = {**ROW, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...})


def test_the_fixture_parses_whole_with_exact_micro_usd_and_utc_times() -> None:
    parsed = parse_lines(FIXTURE.read_text().splitlines(), now=NOW)
    assert parsed.errors == [] and parsed.duplicates == []
    assert [(r.line, r.org_id, r.cost) for r in parsed.rows] == [
        (1, "org_acme", 11_709),
        (2, "org_acme", 25),
        (3, "org_acme", 1),
        (4, "org_acme", 0),
        (5, "org_globex", 1_234_567_891),
        (6, "org_globex", 3_736),
    ]
    first, iso_offset = parsed.rows[0], parsed.rows[4]
    assert first.at == datetime(2025, 12, 1, 0, 0, 0, 123_000, tzinfo=UTC)  # ms since the epoch
    assert iso_offset.at == datetime(2025, 12, 1, 0, 0, tzinfo=UTC)  # 01:00+01:00
    assert (first.prompt_tokens, first.completion_tokens, first.key) == (
        1843,
        412,
        "legacy:gen-1764547200-Zq3vK8pLmN2xR7tY",
    )


@pytest.mark.parametrize(
    ("cost", "micro"),
    [
        (0.000001, 1),
        ("0.000001", 1),
        ("1234.567891", 1_234_567_891),
        (1234.567891, 1_234_567_891),
        (0.1, 100_000),
        (12, 12_000_000),
        ("1e-6", 1),
        (0, 0),
    ],
)
def test_costs_are_exact_decimals_never_floats(cost: object, micro: int) -> None:
    # json.dumps writes 1234.567891 as that literal; parsed as a float it would still round-trip,
    # but 0.1 + 0.2 style sums would not: the parser never builds a float.
    parsed = parse_lines([line(costUsd=cost)], now=NOW)
    assert parsed.errors == []
    assert parsed.rows[0].cost == micro


def test_a_json_number_is_read_digit_for_digit_not_through_a_float() -> None:
    assert int(1.001 * 1_000_000) == 1_000_999  # what a float would have charged
    parsed = parse_lines([line(costUsd=1.001), line(requestId="gen-2", costUsd=999999999.999999)], now=NOW)
    assert [r.cost for r in parsed.rows] == [1_001_000, 999_999_999_999_999]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (line(costUsd=..., ts=...), "missing field(s): costUsd, ts"),
        (line(orgId=None), "missing field(s): orgId"),
        (line(costUsd=-0.5), "costUsd must not be negative"),
        (line(costUsd="0.0000001"), "more precision than a micro-dollar"),
        (line(costUsd="twelve"), "costUsd must be a decimal number"),
        (line(costUsd=True), "costUsd must be a decimal number"),
        (line().replace("2.5e-05", "NaN"), "NaN is not a number"),
        (line(costUsd="Infinity"), "finite"),
        (line(costUsd="2000000000"), "larger than the ledger allows"),
        (line(promptTokens=-1), "promptTokens must be a whole number"),
        (line(completionTokens=1.5), "completionTokens must be a whole number"),
        (line(completionTokens=True), "completionTokens must be a whole number"),
        (line(requestId="has space"), "requestId must be 1 to 120 printable ASCII"),
        (line(requestId="x" * 121), "requestId must be 1 to 120"),
        (line(requestId=7), "requestId must be"),
        (line(model=" "), "model must be a non-empty"),
        (line(orgId="o" * 33), "orgId must be a non-empty string of at most 32"),
        (line(ts="2025-12-01T00:00:00"), "ts has no time zone"),
        (line(ts="yesterday"), "ts must be an ISO 8601 time"),
        (line(ts="2027-01-01T00:00:00Z"), "ts is in the future"),
        (line(ts=-5), "out of range"),
        (line(ts=1.5e12), "ts must be an ISO 8601 time with a zone or integer milliseconds"),
    ],
)
def test_a_bad_line_is_an_error_with_its_line_number(raw: str, message: str) -> None:
    parsed = parse_lines([line(requestId="ok-1"), "", raw, line(requestId="ok-2")], now=NOW)
    assert [r.request_id for r in parsed.rows] == ["ok-1", "ok-2"]
    [error] = parsed.errors
    assert error.line == 3 and message in error.message, error.message


def test_an_error_never_echoes_the_lines_values() -> None:
    secret = "sk-or-v1-should-never-be-echoed"
    parsed = parse_lines([line(costUsd=secret), line(model=secret * 20)], now=NOW)
    assert len(parsed.errors) == 2
    assert all(secret not in e.message for e in parsed.errors)


def test_a_repeated_request_id_is_a_duplicate_when_equal_and_an_error_when_not() -> None:
    parsed = parse_lines(
        [
            line(),
            line(),  # the same row twice in an export
            line(costUsd="0.5"),  # the same request id with another cost: which one is true?
            line(orgId="org_other"),  # ids are per org
        ],
        now=NOW,
    )
    assert [(r.line, r.org_id) for r in parsed.rows] == [(1, "org_acme"), (4, "org_other")]
    assert [(d.line, d.first_line) for d in parsed.duplicates] == [(2, 1)]
    assert parsed.errors == [
        LineError(3, "requestId 'gen-1' of org 'org_acme' is on line 1 with other values")
    ]


@pytest.mark.parametrize(
    ("key", "request_id"),
    [
        ("pf:req_1:llm:at_ABC", "req_1"),
        ("pf:req_1:llm:at_ABC:settle", "req_1"),
        ("pf:req_1:tts:at_ABC:charge", "req_1"),
        ("pf:a:b:c:stt:at_X:release", "a:b:c"),  # client ids may contain colons
        ("pf:-:llm:at_X", "-"),
        ("legacy:req_1", None),
        ("grant-1", None),
        ("pf:req_1:settle", None),
    ],
)
def test_request_path_keys_give_back_their_request_id(key: str, request_id: str | None) -> None:
    assert request_id_of(key) == request_id
