"""The conformance harness: a versioned suite of cases run against real connections, scored per
(model, capability), stored, and read back into the routing snapshot as enablement gates
(docs/conformance.md)."""
