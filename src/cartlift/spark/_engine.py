"""The engine switch: one capability flag set at import and the check every Spark path calls.

Like implicit's ``implicit/gpu/__init__.py``: the flag is computed once, and code that needs the
optional backend asks `require_spark`, which fails with what to install.
"""

from __future__ import annotations

import os
import shutil

from cartlift.errors import InvalidParameterError, SparkUnavailableError

__all__ = ["ENGINES", "HAS_SPARK", "SparkUnavailableError", "check_engine", "require_spark"]

ENGINES = ("duckdb", "spark")
"""Batch engines: ``duckdb`` (embedded, the default) and ``spark`` (PySpark, local or a cluster)."""

try:  # pragma: no cover - depends on the environment
    import pyspark  # noqa: F401

    HAS_SPARK = True
except ImportError:  # pragma: no cover
    HAS_SPARK = False

INSTALL_HINT = "pip install 'cartlift[spark]'"


def require_spark() -> None:
    """Raise `SparkUnavailableError` unless pyspark imports and a Java runtime is found."""
    # the module global is read at call time, so tests can switch the flag off without uninstalling
    if not HAS_SPARK:
        raise SparkUnavailableError(
            f"The Spark engine needs pyspark, which is not installed: {INSTALL_HINT} "
            "(or use --engine duckdb, the default)."
        )
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise SparkUnavailableError(
            "The Spark engine needs a Java runtime (17 or 21) and none was found: install one "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
        )


def check_engine(engine: str) -> str:
    """The engine name, lower-cased, after checking it is known (and, for spark, available)."""
    name = engine.strip().lower()
    if name not in ENGINES:
        raise InvalidParameterError(
            f"The engine must be one of {', '.join(ENGINES)}. Got {engine!r} instead."
        )
    if name == "spark":
        require_spark()
    return name
