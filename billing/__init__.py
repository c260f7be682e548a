"""Patchbay billing package."""
