"""The gate's JSON output (`servelab gate --json`): the result object, one line."""

from __future__ import annotations

import json
import math


def _finite(value):
    """JSON has no infinity: an infinite relative change (from a zero baseline) becomes a string."""
    if isinstance(value, float) and math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def render_json(result: dict) -> str:
    return json.dumps(_finite(result))
