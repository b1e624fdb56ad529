"""Fixtures of the plugin's browser tests (defined in harness.py)."""

from tests.plugin.harness import browser, playwright, service

__all__ = ["browser", "playwright", "service"]
