"""The one place for the codes and messages that degenerate data produces.

Degenerate data (an empty arm, zero variance, a control mean of zero) is not misuse: the analysis
still returns a result, with one of these codes and its message, and neutral numbers (no lift, a
p-value of 1, a chance to beat control of 0.5), as gbstats does (``gbstats/messages.py``).
Misuse (unknown variant, negative counts) raises from :mod:`cartlift.errors` instead.
"""

from __future__ import annotations

from typing import Final

from cartlift.errors import SampleRatioMismatchWarning

__all__ = ["MESSAGES", "SampleRatioMismatchWarning", "message"]

TOO_FEW_UNITS: Final = "too_few_units"
ZERO_VARIANCE: Final = "zero_variance"
ZERO_CONTROL_MEAN: Final = "zero_control_mean"
UNCERTAIN_CONTROL_MEAN: Final = "uncertain_control_mean"
ZERO_DENOMINATOR: Final = "zero_denominator"
COVARIATE_CONSTANT: Final = "covariate_constant"
NOT_BINARY: Final = "not_binary"

MESSAGES: Final[dict[str, str]] = {
    TOO_FEW_UNITS: (
        "Variant {variant!r} or the control has fewer than 2 units ({n_control} vs {n_variant}); "
        "wait for more traffic before reading this comparison."
    ),
    ZERO_VARIANCE: (
        "The metric does not vary in either arm (every unit has the same value), so there is no "
        "evidence either way; check that the metric column is the one you meant."
    ),
    ZERO_CONTROL_MEAN: (
        "The control's mean is 0, so a relative lift is undefined; analyse the absolute difference "
        "(`--absolute` on the command line, relative=False in Python) or wait for conversions in the control."
    ),
    UNCERTAIN_CONTROL_MEAN: (
        "The control's mean is too close to 0 for its uncertainty (under 2 standard errors), so the "
        "relative lift has no finite interval; analyse the absolute difference (`--absolute`, "
        "relative=False) or wait for more data in the control."
    ),
    ZERO_DENOMINATOR: (
        "The ratio's denominator sums to 0 in one arm, so the ratio is undefined; check the "
        "denominator column."
    ),
    COVARIATE_CONSTANT: (
        "The CUPED covariate is constant, so it cannot reduce variance; the unadjusted metric was used."
    ),
    NOT_BINARY: "Proportion tests need a 0/1 metric; this metric has other values.",
}


def message(code: str, **values: object) -> str:
    """The message for ``code`` with ``values`` filled in."""
    text = MESSAGES[code]
    try:
        return text.format(**values)
    except (KeyError, IndexError):  # a caller without the details still gets the sentence
        return text
