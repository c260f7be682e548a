"""Every package's tables, gathered for migrations and `create_all` in tests."""

from __future__ import annotations

import billing.ledger_tables
import billing.spend_tables
import billing.tables
import foundation.audit
import foundation.orgs
import providers.vault.tables
import routing.config_history
import routing.config_versions
import routing.conformance.tables
import routing.flag_store
import routing.tables
import server.access.tables
import server.activity.table
import server.payments.tables
import server.tables
from foundation.db import Base

TABLE_MODULES = (
    billing.ledger_tables,
    billing.spend_tables,
    billing.tables,
    foundation.audit,
    foundation.orgs,
    providers.vault.tables,
    routing.conformance.tables,
    routing.config_history,
    routing.config_versions,
    routing.flag_store,
    routing.tables,
    server.access.tables,
    server.activity.table,
    server.payments.tables,
    server.tables,
)
metadata = Base.metadata
