"""Patchbay routing package."""
