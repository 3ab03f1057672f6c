"""Load-generator accuracy against a known-timing target: client timings minus the server's truth.

The calibration server (serving/calibration.py) logs, per request, when it received it
(`t_recv_ns`) and when each chunk reached the transport (`chunk_ns`), on the same
CLOCK_MONOTONIC as the client's records. Pure: parses lines, matches, computes errors.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence

import numpy as np

MATCH_WINDOW_NS = 50_000_000


def parse_log(lines: Iterable[str]) -> list[dict]:
    """The server log's JSON lines, sorted by receive time; a line cut short is skipped."""
    rows = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("t_recv_ns"), int):
            rows.append(obj)
    return sorted(rows, key=lambda r: r["t_recv_ns"])


def match(client: list[dict], server: list[dict], window_ns: int = MATCH_WINDOW_NS) -> list[tuple]:
    """Pairs each client request with the unused server request received soonest after its
    send (within `window_ns`); client requests with no such server request are left out."""
    recv = [s["t_recv_ns"] for s in server]
    used: set[int] = set()
    pairs = []
    for c in sorted(client, key=lambda r: r["t_send_ns"]):
        i = bisect.bisect_left(recv, c["t_send_ns"])
        while i < len(recv) and (i in used) and recv[i] - c["t_send_ns"] < window_ns:
            i += 1
        if i < len(recv) and recv[i] - c["t_send_ns"] < window_ns:
            used.add(i)
            pairs.append((c, server[i]))
    return pairs


def _q(xs: Sequence[float], p: float) -> float | None:
    return float(np.percentile(xs, p)) if len(xs) else None


def errors_ms(pairs: list[tuple]) -> dict:
    """TTFT and ITL error percentiles in ms.

    Formula: ttft_err = client t_first_ns - server chunk_ns[0]; itl_err_j = client gap j -
    server gap j (gaps between consecutive chunks). Positive = the client saw it late.
    """
    ttft = [(c["t_first_ns"] - s["chunk_ns"][0]) / 1e6 for c, s in pairs if s["chunk_ns"] and c.get("t_first_ns")]
    itl: list[float] = []
    for c, s in pairs:
        cg, sg = np.diff(np.asarray(c["chunk_ns"], dtype=np.int64)), np.diff(np.asarray(s["chunk_ns"], dtype=np.int64))
        n = min(len(cg), len(sg))
        itl.extend(((cg[:n] - sg[:n]) / 1e6).tolist())
    return {"matched": len(pairs), "ttft_err_p50_ms": _q(ttft, 50), "ttft_err_p99_ms": _q(ttft, 99),
            "itl_err_p50_ms": _q(itl, 50), "itl_err_p99_ms": _q(itl, 99)}


def accurate(row: dict, ttft_p50_ms: float = 1.0, ttft_p99_ms: float = 2.0, rate_tol: float = 0.01) -> bool:
    """A rate is accurate when TTFT error p50 <= ttft_p50_ms, p99 <= ttft_p99_ms and the
    achieved rate is within `rate_tol` (relative) of the requested one."""
    p50, p99, got = row.get("ttft_err_p50_ms"), row.get("ttft_err_p99_ms"), row.get("achieved_rate")
    if p50 is None or p99 is None or got is None or not row.get("rate"):
        return False
    return abs(p50) <= ttft_p50_ms and abs(p99) <= ttft_p99_ms and abs(got / row["rate"] - 1) <= rate_tol


def max_accurate_rate(rows: list[dict], **limits: float) -> float | None:
    """The highest requested rate whose row is `accurate` (None if none is)."""
    good = [r["rate"] for r in rows if accurate(r, **limits)]
    return max(good) if good else None
