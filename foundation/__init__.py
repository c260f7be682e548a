"""The ground floor: what every package needs and no vendor, transport or policy owns.

What belongs here: the declarative base, ids and the UTC column type (`db`), the write-behind
row buffer (`buffered`), the audit trail and its sinks (`audit`), the request-error hierarchy
the service layers raise (`errors`), and the orgs table with its tier (`orgs`).

What does not: anything that names a provider or speaks a wire format (that is `providers/`),
prices, credits or the billing-source policy (`billing/`), routing rules (`routing/`), audio
(`voice/`), HTTP or the CLI (`server/`). This package imports none of those; the layering test
(tests/test_layering.py) fails if it starts to.
"""
