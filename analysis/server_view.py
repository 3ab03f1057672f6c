"""The server's own view of a run's requests, beside the client's: what each lever did.

Every response of the built-in server (and of any target that sends a `servelab` object)
says how it was served: queue, prefill and decode time, the batch it ran in, the cache
outcome (miss, prefix, exact, semantic, merged, bypass), the tier and whether it was
degraded. A refusal (401, 429, 503) says its tier and reason in its JSON error body,
which the record keeps as its error text. This module counts those per run:

- `responses`: requests whose answer carried the server's object;
- `cache`: count per outcome; `degraded`: count per kind (max_tokens, model);
- `tiers`: per tier, `served` (answered) and `refused` (by reason: rate_limit_exceeded,
  overloaded, invalid_api_key...); a refusal without a tier is counted under "-";
- `queue_ms`, `prefill_ms`, `decode_ms`: p50/p99/mean over the requests that ran a
  generation of their own (cache outcome miss, prefix or bypass: a hit or a merged
  follower has none); `batch_mean`: mean over those of each one's mean decode batch;
  `prefix_tokens_mean`, `embed_ms_p50` (every semantic lookup): only when reported.

None when no request carried anything of the server's. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from analysis.records import as_records

COLUMNS = ("server", "status", "http_status", "error")
REFUSALS = (401, 429, 503)
GENERATED = ("miss", "prefix", "bypass")  # outcomes that ran a generation (serving/generation.py)


def _server(rec: Mapping[str, Any]) -> dict | None:
    s = rec.get("server")
    if isinstance(s, str):
        try:
            s = json.loads(s)
        except ValueError:
            return None
    return s if isinstance(s, dict) else None


def refusal(rec: Mapping[str, Any]) -> tuple[str, str] | None:
    """(tier or "-", reason) of a refused request, from its JSON error text; else None."""
    if rec.get("http_status") not in REFUSALS:
        return None
    try:
        err = json.loads(rec.get("error") or "").get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    reason = err.get("reason") or err.get("code") or f"http_{rec.get('http_status')}"
    return (err.get("tier") or "-", str(reason))


def _dist(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "mean": None}
    arr = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)), "mean": float(arr.mean())}


def server_view(requests: Iterable[Mapping[str, Any]] | Any, mask: np.ndarray | None = None) -> dict[str, Any] | None:
    """The counts and distributions above over `requests` (optionally the rows in `mask`)."""
    if isinstance(requests, pd.DataFrame):  # only rows with the server's object or a refusal count
        keep = np.zeros(len(requests), dtype=bool)
        if "server" in requests:
            keep |= requests["server"].notna().to_numpy(dtype=bool)
        if "http_status" in requests:
            keep |= requests["http_status"].isin(REFUSALS).to_numpy(dtype=bool, na_value=False)
        if mask is not None:
            keep &= np.asarray(mask, dtype=bool)
        requests, mask = requests[keep], None
    records = as_records(requests, COLUMNS)
    if mask is not None:
        records = [r for r, keep in zip(records, mask) if keep]
    served = [(r, s) for r in records if (s := _server(r)) is not None]
    refused = [x for r in records if (x := refusal(r)) is not None]
    if not served and not refused:
        return None
    tiers: dict[str, dict[str, Any]] = {}
    for _, s in served:
        if s.get("tier") is not None:
            tiers.setdefault(str(s["tier"]), {"served": 0, "refused": {}})["served"] += 1
    for tier, reason in refused:
        entry = tiers.setdefault(tier, {"served": 0, "refused": {}})
        entry["refused"][reason] = entry["refused"].get(reason, 0) + 1
    degraded = Counter(str(s["degraded"]) for _, s in served if s.get("degraded"))

    ran = [s for _, s in served if s.get("cache", "miss") in GENERATED]

    def values(key: str, rows: list[dict] = ran) -> list[float]:
        return [float(s[key]) for s in rows if isinstance(s.get(key), (int, float))]

    out: dict[str, Any] = {
        "responses": len(served),
        "cache": dict(Counter(str(s.get("cache", "unknown")) for _, s in served)),
        "degraded": dict(degraded),
        "tiers": tiers,
        "queue_ms": _dist(values("queue_ms")),
        "prefill_ms": _dist(values("prefill_ms")),
        "decode_ms": _dist(values("decode_ms")),
        "batch_mean": _dist(values("batch_mean"))["mean"],
    }
    if prefix := values("prefix_tokens"):
        out["prefix_tokens_mean"] = float(np.mean(prefix))
    if embed := values("embed_ms", [s for _, s in served]):
        out["embed_ms_p50"] = float(np.percentile(embed, 50))
    return out
