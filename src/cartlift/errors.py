"""Domain errors and warnings of cartlift.

Messages say what was wrong, the value received, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "CartliftError",
    "CartliftWarning",
    "ConvergenceError",
    "DataError",
    "EmbeddingsUnavailableError",
    "FormatDetectionError",
    "InvalidParameterError",
    "NotFittedError",
    "PayloadError",
    "SampleRatioMismatchWarning",
    "SparkUnavailableError",
    "StoreError",
    "UnknownTableError",
]


class CartliftError(Exception):
    """Base class of every error cartlift raises on purpose."""


class InvalidParameterError(CartliftError, ValueError):
    """A parameter or argument has a wrong type or value."""


class DataError(CartliftError, ValueError):
    """Input data cannot be used as given (missing columns, empty input, wrong shapes)."""


class PayloadError(DataError):
    """A webhook or tracker payload that cannot be read as its sender documents it (answered 422)."""


class FormatDetectionError(DataError):
    """The format of an input file could not be detected from its header."""


class StoreError(CartliftError):
    """The event store could not be opened, read or written."""


class UnknownTableError(StoreError, KeyError):
    """A table name that the store does not have."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class NotFittedError(CartliftError, AttributeError):
    """A model was used before `fit` was called."""


class ConvergenceError(CartliftError, RuntimeError):
    """An optimiser did not converge; the message says why and what to try."""


class CartliftWarning(UserWarning):
    """Base class of cartlift's warnings (input converted, degenerate data ...)."""


class SampleRatioMismatchWarning(CartliftWarning):
    """The observed split of units differs from the configured weights (SRM): do not trust the lift.

    A mismatch means assignment or exposure logging is broken (bots, redirects, a variant that
    crashes before logging), and the arms are no longer comparable (Fabijan et al. 2019,
    "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD).
    """


class SparkUnavailableError(CartliftError, ImportError):
    """The Spark engine was asked for but pyspark (or Java) is not available."""


class EmbeddingsUnavailableError(CartliftError, ImportError):
    """Semantic text embeddings were asked for but the ``embeddings`` extra is not installed."""
