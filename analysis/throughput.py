"""Rates over steady windows: throughput, achieved load, goodput and error rate.

Each takes a RequestTable, a mask of the requests that count (analysis/window.py) and the
total window length in seconds, so a run-level figure is the same function over the
pooled steps: completions in all windows / sum of the window lengths. A rate over no
window is None.
"""

from __future__ import annotations

import numpy as np

from analysis.slo import meets_mask
from analysis.table import RequestTable
from servelab.config import SLOTerm


def _per_s(amount: float, seconds: float | None) -> float | None:
    return None if not seconds else float(amount) / seconds


def req_s(table: RequestTable, completed: np.ndarray, seconds: float | None) -> float | None:
    """Completed requests per second.

    Formula: req_s = #(ok requests with t_last in window) / window_s
    """
    return _per_s(int(completed.sum()), seconds)


def output_tok_s(table: RequestTable, completed: np.ndarray, seconds: float | None) -> float | None:
    """Output tokens per second (server usage when reported, else the client's chunk count).

    Formula: output_tok_s = sum(output_tokens of completed) / window_s
    """
    return _per_s(np.nansum(table.output_tokens[completed]), seconds)


def total_tok_s(table: RequestTable, completed: np.ndarray, seconds: float | None) -> float | None:
    """Prompt plus output tokens per second; None if a completed request lacks a prompt count.

    Formula: total_tok_s = sum(prompt_tokens + output_tokens of completed) / window_s
    """
    prompts = table.prompt_tokens[completed]
    if np.isnan(prompts).any():
        return None
    return _per_s(prompts.sum() + np.nansum(table.output_tokens[completed]), seconds)


def achieved_rate(sent: np.ndarray, seconds: float | None) -> float | None:
    """The load actually offered.

    Formula: achieved_rate = #(requests with t_send in window) / window_s
    """
    return _per_s(int(sent.sum()), seconds)


def goodput_req_s(table: RequestTable, completed: np.ndarray, terms: list[SLOTerm],
                  seconds: float | None) -> float | None:
    """Completed requests per second that met every SLO term (DistServe); None without an SLO.

    Formula: goodput = #(completed requests meeting every term) / window_s
    """
    if not terms:
        return None
    return _per_s(int((completed & meets_mask(table, terms)).sum()), seconds)


def error_rate(table: RequestTable, measured: np.ndarray) -> float | None:
    """Share of measured requests that did not finish ok (cancelled included).

    Formula: error_rate = #(status != ok) / #measured
    """
    n = int(measured.sum())
    return None if n == 0 else int((measured & ~table.ok).sum()) / n
