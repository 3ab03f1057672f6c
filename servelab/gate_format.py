"""Number formatting shared by the gate's renderers (Markdown, JUnit, console), so every
report shows a metric the same way."""

from __future__ import annotations

import math

ICONS = {"regressed": "❌", "improved": "🟢", "no change": "✅", "inconclusive": "⚠️"}


def num(value: float | None, unit: str = "") -> str:
    """A metric value with its unit, 3-4 significant digits; '-' when not measured."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return f"{text} {unit}".strip() if unit and unit != "fraction" else text


def pct(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return "+inf" if math.isinf(value) and value > 0 else "-inf" if math.isinf(value) else f"{value:+.1%}"


def interval(m: dict) -> str:
    if m.get("ci_low") is None:
        return "-"
    return f"[{pct(m['ci_low'])}, {pct(m['ci_high'])}]"


def pvalue(m: dict) -> str:
    return "-" if m.get("p_value") is None else f"{m['p_value']:.3g}"


def floors(m: dict) -> str:
    return f"{m['rel_floor']:.0%} and {num(m['abs_floor'], m['unit'])}"


def row(m: dict) -> list[str]:
    """metric, verdict, baseline median, candidate median, change, interval, p."""
    return [m["name"], m["verdict"], num(m.get("baseline_median"), m["unit"]),
            num(m.get("candidate_median"), m["unit"]), pct(m.get("rel_change")), interval(m), pvalue(m)]


HEADER = ["metric", "verdict", "baseline", "candidate", "change", "interval", "p"]  # medians of the repeats
