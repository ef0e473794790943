"""cartlift: turn more carts into orders, on a store's own data."""

__version__ = "0.1.0"

__all__ = ["__version__"]
