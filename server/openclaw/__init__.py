"""`patchbay import openclaw`: bring an OpenClaw deployment's auth profiles, custom providers,
fallback chains, profile order and cooldowns across (docs/openclaw.md).

`source` reads the JSON shapes, `plan` (with `profiles`, `providers`, `chains`, `state`) turns
them into a typed plan without I/O, and `apply` writes the plan one item per transaction.
"""
