from __future__ import annotations

import json

from providers.contract import BillingSource, ErrorClass
from routing.trace import AttemptTrace, Outcome, TraceEntry


def sample() -> AttemptTrace:
    trace = AttemptTrace(intent="chat", source="org:chat")
    trace.add(
        TraceEntry(
            "anthropic/claude",
            "anthropic:default",
            Outcome.SKIPPED,
            "cooldown:rate_limit",
            BillingSource.BYOK,
        )
    )
    trace.add(TraceEntry("xai/grok-4", None, Outcome.SKIPPED, "no_connection"))
    trace.add(
        TraceEntry(
            "openai/gpt-4o", "openai:spare", Outcome.FAILED, "auth", BillingSource.BYOK, ErrorClass.AUTH, 401
        )
    )
    trace.add(
        TraceEntry(
            "openai/gpt-4o", "openai:main", Outcome.SERVED, "", BillingSource.PLATFORM, elapsed_ms=12.345
        )
    )
    return trace


def test_header_form() -> None:
    assert sample().header() == (
        "anthropic:default/claude=skipped:cooldown:rate_limit;xai/grok-4=skipped:no_connection;"
        "openai:spare/gpt-4o=failed:auth;openai:main/gpt-4o=served"
    )


def test_summary_is_json_and_names_the_winner_and_its_billing() -> None:
    summary = json.loads(json.dumps(sample().to_dict()))
    assert summary["served"] == "openai:main/gpt-4o"
    assert summary["billing_source"] == "platform"
    assert summary["attempts"][2] == {
        "ref": "openai/gpt-4o",
        "profile": "openai:spare",
        "result": "failed:auth",
        "billing_source": "byok",
        "error_class": "auth",
        "status": 401,
    }
    assert summary["attempts"][3]["elapsed_ms"] == 12.3


def test_empty_trace() -> None:
    trace = AttemptTrace()
    assert trace.served is None and trace.billing_source is None and trace.header() == ""
