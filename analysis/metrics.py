"""Per-request metrics, one small function each, from raw integer-nanosecond timestamps.

Every function takes one request record (dict or pandas row, see analysis/records.py)
and returns a number in nanoseconds, or None where the metric does not apply (never 0).
The formulas are the same for every status; summaries feed only `status == "ok"`
requests into latency distributions (`is_ok`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from analysis.records import chunks, field


def is_ok(rec: Mapping[str, Any]) -> bool:
    """True for a request that finished normally.

    Formula: ok = (status == "ok")
    """
    return field(rec, "status") == "ok"


def _diff(rec: Mapping[str, Any], later: str, earlier: str) -> int | None:
    a, b = field(rec, later), field(rec, earlier)
    return None if a is None or b is None else a - b


def ttft_ns(rec: Mapping[str, Any]) -> int | None:
    """Time to first token, from the actual send.

    Formula: ttft = t_first_ns - t_send_ns
    """
    return _diff(rec, "t_first_ns", "t_send_ns")


def ttft_sched_ns(rec: Mapping[str, Any]) -> int | None:
    """Time to first token from the scheduled send (open loop only; None in closed loop).

    Includes the load generator's own lateness, so it is free of coordinated omission.
    Formula: ttft_sched = t_first_ns - t_sched_ns
    """
    return _diff(rec, "t_first_ns", "t_sched_ns")


def schedule_lag_ns(rec: Mapping[str, Any]) -> int | None:
    """How late the client sent the request against its schedule (open loop only).

    Formula: schedule_lag = t_send_ns - t_sched_ns
    """
    return _diff(rec, "t_send_ns", "t_sched_ns")


def e2e_ns(rec: Mapping[str, Any]) -> int | None:
    """End-to-end latency: send to the last byte of the response.

    Formula: e2e = t_last_ns - t_send_ns
    """
    return _diff(rec, "t_last_ns", "t_send_ns")


def output_tokens(rec: Mapping[str, Any]) -> int | None:
    """Output tokens: the server's usage count when reported, else the client's chunk count.

    Formula: output_tokens = usage.completion_tokens if present else output_tokens_client
    """
    n = field(rec, "output_tokens")
    return n if n is not None else field(rec, "output_tokens_client")


def prompt_tokens(rec: Mapping[str, Any]) -> int | None:
    """Prompt tokens: the server's usage count when reported, else the client's own count.

    Formula: prompt_tokens = usage.prompt_tokens if present else prompt_tokens_client
    """
    n = field(rec, "prompt_tokens")
    return n if n is not None else field(rec, "prompt_tokens_client")


def tpot_ns(rec: Mapping[str, Any]) -> float | None:
    """Time per output token after the first (vLLM's TPOT); None with fewer than 2 tokens,
    or with fewer than 2 content chunks (a whole response: non-streaming or a job).

    Formula: tpot = (t_last_ns - t_first_ns) / (output_tokens - 1)
    """
    n, span = output_tokens(rec), _diff(rec, "t_last_ns", "t_first_ns")
    if n is None or n < 2 or span is None or len(chunks(rec)) < 2:
        return None
    return span / (n - 1)


def itl_ns(rec: Mapping[str, Any]) -> list[int]:
    """Inter-token latencies: every gap between consecutive content chunks ([] if < 2 chunks).

    Pooled over requests these form the ITL distribution.
    Formula: itl[i] = chunk_ns[i] - chunk_ns[i-1], i = 1 .. len(chunk_ns) - 1
    """
    c = chunks(rec)
    return [b - a for a, b in zip(c, c[1:])]


def tokens_per_gap(rec: Mapping[str, Any]) -> float:
    """Output tokens per chunk gap: how many tokens each later chunk carried, on average.
    1 for a server that streams one token per chunk, and when usage is absent (the count is
    then the chunks themselves).

    Formula: tokens_per_gap = (usage.completion_tokens - 1) / (len(chunk_ns) - 1), at least 1;
    1 when usage is absent or the request has fewer than 2 chunks
    """
    n, c = field(rec, "output_tokens"), len(chunks(rec))
    if n is None or c < 2:
        return 1.0
    return max(1.0, (n - 1) / (c - 1))


def itl_token_ns(rec: Mapping[str, Any]) -> list[float]:
    """Inter-token latencies per token: each chunk gap divided by the tokens per gap, as if
    the tokens after the first chunk were spread evenly over the gaps. Equal to `itl_ns` for
    one token per chunk; for a server that packs tokens it is the per-token figure to compare.

    Formula: itl_token[i] = (chunk_ns[i] - chunk_ns[i-1]) / tokens_per_gap
    """
    per = tokens_per_gap(rec)
    return [g / per for g in itl_ns(rec)]


def max_itl_ns(rec: Mapping[str, Any]) -> int | None:
    """The request's longest stall between chunks (used for per-request ITL SLO terms).

    Formula: max_itl = max(itl); None when the request has fewer than 2 chunks
    """
    gaps = itl_ns(rec)
    return max(gaps) if gaps else None



def itl_gaps(chunk_lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """itl_ns of many requests at once: (every gap, the index of the request it belongs to).

    Formula: gap = chunk_ns[i] - chunk_ns[i-1] within each request, as in itl_ns
    """
    lengths = np.fromiter(map(len, chunk_lists), dtype=np.int64, count=len(chunk_lists))
    flat = np.fromiter(itertools.chain.from_iterable(chunk_lists), dtype=np.int64, count=int(lengths.sum()))
    row = np.repeat(np.arange(len(chunk_lists), dtype=np.int64), lengths)
    same = row[1:] == row[:-1]  # drop the jump from one request's last chunk to the next's first
    return np.diff(flat)[same], row[1:][same]


def pooled_itl_ns(records: list[Mapping[str, Any]]) -> np.ndarray:
    """All requests' chunk gaps in one array: the ITL distribution.

    Formula: concat over requests of (chunk_ns[i] - chunk_ns[i-1])
    """
    return itl_gaps([chunks(r) for r in records])[0]
