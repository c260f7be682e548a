"""Patchbay voice package."""
