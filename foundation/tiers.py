"""The plan tiers an org can be on (`orgs.tier`): a name only, without SQLAlchemy, so settings and
the CLI's start-up can name a tier without loading the ORM. Each tier's policy is in
`billing.tiers`."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    FREE = "free"
    STARTER = "starter"
    PRO = "pro"
    AGENCY = "agency"
    ENTERPRISE = "enterprise"
