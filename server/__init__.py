"""Patchbay server package."""
