"""Plain-language verdicts of an analysis, for the terminal, the report and the demo."""

from __future__ import annotations

from cartlift.experiments._analysis import ExperimentResult, VariantResult

__all__ = ["format_value", "verdicts"]


def format_value(value: float | None, *, percent: bool, signed: bool = False, digits: int = 2) -> str:
    """``0.0123`` as ``1.23%`` (or ``+1.23%``), a plain number otherwise; ``-`` for missing."""
    if value is None:
        return "-"
    sign = "+" if signed else ""
    if percent:
        return f"{value * 100:{sign}.{digits}f}%"
    return f"{value:{sign},.{digits}f}" if abs(value) >= 1 else f"{value:{sign}.{digits + 2}f}"


def _lift_text(result: ExperimentResult, v: VariantResult) -> str:
    percent = result.relative or result.binary
    level = round((1 - result.alpha) * 100)
    return (
        f"{format_value(v.lift, percent=percent, signed=True)} "
        f"({level}% interval {format_value(v.ci_low, percent=percent, signed=True)} to "
        f"{format_value(v.ci_high, percent=percent, signed=True)})"
    )


def verdicts(result: ExperimentResult) -> list[str]:
    """One sentence per variant a marketer can act on, plus the SRM warning first when it applies."""
    lines: list[str] = []
    if result.srm.mismatch:
        lines.append(
            f"Sample ratio mismatch (p = {result.srm.p_value:.1e}): the split of units is not what was "
            "configured, so these results cannot be trusted until the cause is found."
        )
    for v in result.variants:
        if v.is_control:
            continue
        if v.error_code:
            lines.append(f"{v.name}: {v.error_message}")
            continue
        lift = _lift_text(result, v)
        chance = f"{(v.chance_to_beat_control or 0) * 100:.1f}% chance to beat {result.control}"
        if result.method == "bayesian":
            if (v.chance_to_beat_control or 0) >= 0.95:
                head = f"{v.name} is very likely better than {result.control}"
            elif (v.chance_to_beat_control or 0) <= 0.05:
                head = f"{v.name} is very likely worse than {result.control}"
            else:
                head = f"{v.name}: not conclusive yet"
            lines.append(f"{head}: {lift}, {chance}.")
            continue
        p = f"p = {v.p_value_adjusted:.3g}" if v.p_value_adjusted is not None else ""
        if v.significant and (v.lift or 0) > 0:
            head = f"{v.name} beats {result.control}"
        elif v.significant:
            head = f"{v.name} is worse than {result.control}"
        else:
            head = f"{v.name}: no significant difference from {result.control} yet"
        lines.append(f"{head}: {lift}, {p}, {chance}.")
    return lines
