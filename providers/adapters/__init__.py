"""Chat adapters, one per wire protocol."""
