"""Subscription tiers. Features and limits per tier arrive with the billing issue."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    FREE = "free"
    STARTER = "starter"
    PRO = "pro"
    AGENCY = "agency"
    ENTERPRISE = "enterprise"
