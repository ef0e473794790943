"""Fixtures of the delivery tests (defined in `_deliver_helpers`, which tests import by its unique name)."""

from _deliver_helpers import http, shop, smtp

__all__ = ["http", "shop", "smtp"]
