"""Prometheus text (a server's `/metrics`) to the series servelab keeps, with prometheus_client's parser.

Kept: vLLM's `vllm:*` and SGLang's `sglang:*` series where the text has them, else every
gauge and counter (and a histogram's or summary's sum and count) less the client library's
own `python_*`/`process_*` ones; histogram buckets and `_created` timestamps are left out.
Used by servelab/telemetry.py, the engine-telemetry scraper.
"""

from __future__ import annotations

import json

MAX_SERIES = 400  # per scrape: a target with thousands of series still costs little
ENGINE_PREFIXES = ("vllm:", "sglang:")
SKIP_PREFIXES = ("python_", "process_")


def available() -> bool:
    """Whether the parser's package (prometheus-client, an optional dependency) is installed."""
    try:
        import prometheus_client.parser  # noqa: F401
    except ImportError:
        return False
    return True


def parse(text: str) -> list[tuple[str, str, float]]:
    """(name, labels as JSON, value) of the series worth keeping in one /metrics text;
    ValueError when it is not Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    rows = []
    for family in text_string_to_metric_families(text):
        if family.type not in ("gauge", "counter", "histogram", "summary", "unknown"):
            continue
        for s in family.samples:
            if s.name.endswith("_bucket") or s.name.endswith("_created") or s.name.startswith(SKIP_PREFIXES):
                continue
            rows.append((s.name, json.dumps(dict(sorted(s.labels.items()))), float(s.value)))
    ours = [r for r in rows if r[0].startswith(ENGINE_PREFIXES)]
    return (ours or rows)[:MAX_SERIES]
