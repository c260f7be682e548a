"""Patchbay providers package."""
