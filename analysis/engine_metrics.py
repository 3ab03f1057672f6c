"""The engine's own metrics over a run, from the `/metrics` scrapes stored with it.

One row per series (name + labels): a counter (a name ending `_total`, `_count` or `_sum`,
Prometheus's naming rule) by how much it grew over the run, `delta = last - first`; any
other series, a gauge, by its mean, max and last value over the scrapes. Pure: takes the
`engine_samples` rows as a frame (store/profiles.py).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

COUNTER_SUFFIXES = ("_total", "_count", "_sum")
# The series that say most about a serving engine, shown first: vLLM's and SGLang's names
# for requests running and waiting, KV-cache use, prefix-cache hits and preemptions.
KEY_SERIES = ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc", "gpu_cache_usage_perc",
              "prefix_cache_hits", "prefix_cache_queries", "num_preemptions", "num_running_reqs",
              "num_queue_reqs", "token_usage", "cache_hit_rate")
# Labels every series of an engine carries, which say nothing about the series itself.
NOISE_LABELS = ("model_name", "engine", "model")


def is_counter(name: str) -> bool:
    return name.endswith(COUNTER_SUFFIXES)


def _label_text(labels: str | None) -> str:
    try:
        parsed = json.loads(labels or "{}")
    except ValueError:
        return ""
    return ",".join(f"{k}={v}" for k, v in parsed.items() if k not in NOISE_LABELS)


def engine_metrics(samples: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Per series: {name, labels, kind, key, scrapes, mean, max, last, delta} (None where n/a);
    `key`: one of KEY_SERIES."""
    if samples is None or samples.empty:
        return []
    out = []
    for (name, labels), g in samples.groupby(["name", "labels"], sort=True):
        values = g.sort_values("t_ns")["value"].astype(float)
        counter = is_counter(str(name))
        out.append({
            "name": str(name), "labels": _label_text(labels), "kind": "counter" if counter else "gauge",
            "key": str(name).split(":")[-1].removesuffix("_total") in KEY_SERIES,
            "scrapes": int(len(values)),
            "mean": None if counter else float(values.mean()),
            "max": None if counter else float(values.max()),
            "last": float(values.iloc[-1]),
            "delta": float(values.iloc[-1] - values.iloc[0]) if counter else None,
        })
    return out
