"""The load generator's self-check: can this run's client-side numbers be trusted?

A run passes when the client kept up with what it was asked to do. Checks (each fails with
one reason line; a check with nothing to judge is None and does not fail):

- client CPU: the worker's own process CPU over the step, in % of one core
  (100 * process CPU seconds / wall seconds), max over steps: fails above 90.
  A saturated client delays its own sends and its chunk timestamps.
- schedule lag (open loop): lag = t_send - t_sched over every request that was sent;
  fails when p99 > 10 ms.
- achieved / requested (open loop): requests sent / arrivals the schedule held before the
  step stopped (the worker counts them: `scheduled`); fails when |ratio - 1| > 1%.
- token mismatch: fraction of ok requests whose server `usage` disagrees with the client's
  own count: output tokens (usage.completion_tokens vs content chunks), and prompt tokens
  when the client's count is exact (token-id prompts); fails above 1%.
- client stall (recorded, never fails): the worst lateness of a 5 ms ticker in the worker,
  max over steps (`client_stall_max_ms`): a bound on how late the client may have noticed
  a chunk at the worst moment (a garbage collection, a busy greenlet, the machine pausing
  the process). One stall touches few requests, so it informs rather than fails the run.
- output length (recorded, never fails): fraction of ok requests that got fewer output
  tokens than `max_tokens` asked for. servelab asks for exact lengths (`max_tokens` with
  `ignore_eos`/`min_tokens`); a target that ignores those stops early, and this says how often.

Pure: no I/O. Percentiles as in `analysis.stats`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.records import as_records, field
from analysis.stats import percentile

THRESHOLDS = {"client_cpu_pct": 90.0, "schedule_lag_p99_ms": 10.0, "rate_error": 0.01,
              "token_mismatch_frac": 0.01}
_COLUMNS = ("t_sched_ns", "t_send_ns", "status", "output_tokens", "output_tokens_client",
            "prompt_tokens", "prompt_tokens_client", "max_tokens")


def schedule_lags_ms(records: list[dict[str, Any]]) -> np.ndarray:
    """t_send - t_sched in ms for every open-loop request that was sent (not cancelled unsent)."""
    lags = [(r["t_send_ns"] - r["t_sched_ns"]) / 1e6 for r in records
            if r.get("t_sched_ns") is not None and r.get("t_send_ns") is not None
            and r.get("status") != "cancelled"]
    return np.array(lags, dtype=np.float64)


def token_mismatch_frac(records: list[dict[str, Any]], exact_prompt: bool) -> float | None:
    """Fraction of ok requests with server usage whose counts differ from the client's.

    Formula: mismatched / judged, judged = ok requests that carry usage.completion_tokens and a client count
    (whole responses, non-streaming or jobs, have none).
    """
    judged = mismatched = 0
    for r in records:
        if r.get("status") != "ok" or r.get("output_tokens") is None or r.get("output_tokens_client") is None:
            continue
        judged += 1
        bad = r["output_tokens"] != r.get("output_tokens_client")
        if exact_prompt and r.get("prompt_tokens") is not None:
            bad = bad or r["prompt_tokens"] != r.get("prompt_tokens_client")
        mismatched += bad
    return mismatched / judged if judged else None


def short_output_frac(records: list[dict[str, Any]]) -> float | None:
    """Fraction of ok requests with fewer output tokens (usage, else the client's count) than
    their `max_tokens`. Formula: short / judged, judged = ok requests with a max_tokens."""
    judged = short = 0
    for r in records:
        if r.get("status") != "ok" or r.get("max_tokens") is None:
            continue
        got = r.get("output_tokens") if r.get("output_tokens") is not None else r.get("output_tokens_client")
        if got is None:
            continue
        judged += 1
        short += got < r["max_tokens"]
    return short / judged if judged else None


def achieved_over_requested(steps: Sequence[Mapping[str, Any]], records: list[dict[str, Any]]) -> float | None:
    """Open loop: requests sent / arrivals scheduled before stop, over all open steps.

    Formula: sum(sent_k) / sum(scheduled_k); sent = records with a t_sched_ns.
    """
    open_steps = [s for s in steps if field(s, "mode") == "open"]
    scheduled = [field(s, "scheduled") for s in open_steps]
    if not open_steps or any(n is None for n in scheduled) or not sum(scheduled):
        return None
    sent = sum(1 for r in records if r.get("t_sched_ns") is not None)
    return sent / sum(scheduled)


def _max(values: Iterable[Any]) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def self_check(requests: pd.DataFrame | Iterable[Mapping[str, Any]], steps: Sequence[Mapping[str, Any]],
               exact_prompt: bool = False, thresholds: Mapping[str, float] = THRESHOLDS) -> dict[str, Any]:
    """The `self_check` object of a run summary: the figures, `passed` and `reasons`."""
    records = as_records(requests, _COLUMNS)
    lags = schedule_lags_ms(records)
    out = {
        "client_cpu_pct_max": _max(field(s, "client_cpu_pct") for s in steps),
        "schedule_lag_p50_ms": percentile(lags, 50),
        "schedule_lag_p99_ms": percentile(lags, 99),
        "achieved_over_requested": achieved_over_requested(steps, records),
        "usage_vs_client_token_mismatch_frac": token_mismatch_frac(records, exact_prompt),
        "capped_requests": _max(field(s, "capped") for s in steps),
        "client_stall_max_ms": _max(field(s, "client_stall_max_ms") for s in steps),
        "output_shorter_than_asked_frac": short_output_frac(records),
    }
    reasons = _reasons(out, thresholds)
    return {**out, "passed": not reasons, "reasons": reasons, "thresholds": dict(thresholds)}


def _reasons(c: Mapping[str, Any], t: Mapping[str, float]) -> list[str]:
    reasons = []
    if c["client_cpu_pct_max"] is not None and c["client_cpu_pct_max"] > t["client_cpu_pct"]:
        reasons.append(f"client CPU {c['client_cpu_pct_max']:.0f}% of a core > {t['client_cpu_pct']:.0f}%:"
                       " the load generator was saturated")
    if c["schedule_lag_p99_ms"] is not None and c["schedule_lag_p99_ms"] > t["schedule_lag_p99_ms"]:
        reasons.append(f"schedule lag p99 {c['schedule_lag_p99_ms']:.1f} ms > {t['schedule_lag_p99_ms']:g} ms")
    ratio = c["achieved_over_requested"]
    if ratio is not None and abs(ratio - 1) > t["rate_error"]:
        reasons.append(f"achieved/requested rate {ratio:.3f} is off by more than {t['rate_error']:.0%}")
    mism = c["usage_vs_client_token_mismatch_frac"]
    if mism is not None and mism > t["token_mismatch_frac"]:
        reasons.append(f"{mism:.1%} of requests: server usage != client token count"
                       f" (> {t['token_mismatch_frac']:.0%})")
    return reasons


def shown_status(status: str | None, self_check: str | None) -> str:
    """The run status, flagged when its load generator failed its own self-check
    (`self_check` as `servelab runs` lists it: "passed", "failed" or None)."""
    return f"{status} (self-check failed)" if self_check == "failed" else str(status)


# (figure key, what it is, threshold key, how the limit reads): the figures as shown to people.
FIGURES = (
    ("client_cpu_pct_max", "client CPU, % of one core (max over steps)", "client_cpu_pct", "<= {:g}"),
    ("schedule_lag_p50_ms", "schedule lag p50, ms", None, None),
    ("schedule_lag_p99_ms", "schedule lag p99, ms", "schedule_lag_p99_ms", "<= {:g}"),
    ("achieved_over_requested", "requests sent / scheduled (open loop)", "rate_error", "1 ± {:g}"),
    ("usage_vs_client_token_mismatch_frac", "server usage != client token count, fraction",
     "token_mismatch_frac", "<= {:g}"),
    ("client_stall_max_ms", "client stalled at most, ms", None, None),
    ("output_shorter_than_asked_frac", "outputs shorter than max_tokens asked, fraction", None, None),
    ("capped_requests", "requests whose lengths were capped to the context", None, None),
)


def figure_rows(check: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The self-check's figures, one row each: what it is, its value, and the limit that
    fails the run ("reported only" for the figures that never fail)."""
    limits = check.get("thresholds") or THRESHOLDS
    rows = []
    for key, label, limit_key, fmt in FIGURES:
        limit = fmt.format(limits[limit_key]) if fmt and limit_key and limit_key in limits else "reported only"
        rows.append({"figure": label, "value": check.get(key), "limit": limit})
    return rows
