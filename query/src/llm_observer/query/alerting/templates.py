"""Annotation templates: ``{{ $value }}``, ``{{ $threshold }}`` and ``{{ $labels.NAME }}`` (also ``{{
.Value }}`` / ``{{ .Labels.NAME }}``, as Prometheus rule authors write them), with values formatted in their
unit (a rate as a percentage, a latency in ms, spend in USD).

Rendering never raises: a placeholder it does not know, or a label the alert does not have, is left in the
text as written, so a typo shows in the notification instead of silencing it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from llm_observer.query.alerting.measures import Unit

_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_LABEL = re.compile(r"^(?:\$labels|\.Labels)\.([A-Za-z_][A-Za-z0-9_]*)$")


def format_value(value: float, unit: Unit) -> str:
    """``value`` as people read it: ``7.1%``, ``1,234 ms``, ``12.50 USD``, ``3.2/s``, ``14.4x``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    match unit:
        case "ratio":
            return f"{_short(value * 100)}%"
        case "ms":
            return f"{value:,.0f} ms" if abs(value) >= 10 else f"{_short(value)} ms"
        case "usd":
            return f"{value:,.2f} USD" if abs(value) >= 0.01 or value == 0 else f"{value:.4g} USD"
        case "usd_per_hour":
            return f"{value:,.2f} USD/h" if abs(value) >= 0.01 or value == 0 else f"{value:.4g} USD/h"
        case "per_second":
            return f"{_short(value)}/s"
        case "count" | "tokens":
            return f"{value:,.0f}" if value == round(value) or abs(value) >= 100 else f"{value:,.1f}"
        case "burn":
            return f"{_short(value)}x"
    return _short(value)


def _short(value: float) -> str:
    """Three significant digits, without trailing zeros (``7.1``, ``0.05``, ``1234``)."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render(
    template: str,
    *,
    value: float,
    labels: Mapping[str, str],
    unit: Unit = "number",
    threshold: float | None = None,
) -> str:
    """``template`` with its placeholders filled; unknown ones left as written."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ("$value", ".Value"):
            return format_value(value, unit)
        if name in ("$threshold", ".Threshold") and threshold is not None:
            return format_value(threshold, unit)
        label = _LABEL.match(name)
        if label is not None and label.group(1) in labels:
            return labels[label.group(1)]
        return match.group(0)

    return _PLACEHOLDER.sub(fill, template)


def render_all(
    annotations: Mapping[str, str],
    *,
    value: float,
    labels: Mapping[str, str],
    unit: Unit = "number",
    threshold: float | None = None,
    summary: str = "",
) -> dict[str, str]:
    """Every annotation rendered, plus ``summary`` (already written out) when the rule gives none."""
    out = {
        key: render(text, value=value, labels=labels, unit=unit, threshold=threshold)
        for key, text in annotations.items()
    }
    if "summary" not in out and summary:
        out["summary"] = summary
    return out


def describe_group(labels: Mapping[str, str], dimensions: tuple[str, ...]) -> str:
    """`` for provider=openai, model=gpt-4o`` (empty without dimensions)."""
    parts = [f"{d}={labels[d]}" for d in dimensions if d in labels]
    return f" for {', '.join(parts)}" if parts else ""
