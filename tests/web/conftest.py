"""Fixtures for the web tests (helpers live in web_support.py so test modules can import them)."""

from web_support import _cheap_argon2, shared_site, site

__all__ = ["_cheap_argon2", "shared_site", "site"]
