"""Reading results back: the store's records through the pure analysis core."""

from __future__ import annotations

from servelab.config import SLOTerm
from store import ingest, profiles, queries


def run_summary(store_path: str, run_id: str, slo: list[SLOTerm] | None = None) -> dict:
    """The summary object of `servelab summary --json`; `slo` overrides the run's own."""
    from analysis.hardware import profiler_windows
    from analysis.summary import summarize_run

    ingest.recover(store_path)
    run = queries.get_run(store_path, run_id)
    steps = queries.get_steps(store_path, run_id)
    requests = queries.get_requests(store_path, run_id)
    samples = profiles.get_samples(store_path, run_id)
    summary = summarize_run(run, steps, requests, slo, samples)  # slo None: the run's own
    ops = profiles.get_operators(store_path, run_id)
    summary["operators"] = top_operators(ops)
    summary["profiler_windows"] = profiler_windows(ops, steps, requests)
    return summary


TOP_OPERATORS = 10


def top_operators(rows: list[dict], n: int = TOP_OPERATORS) -> list[dict]:
    """The first `n` operators of each profiled step (rows come ordered by step, rank)."""
    return [r for r in rows if (r.get("rank") or 0) <= n]


def record_self_check(store_path: str, run_id: str) -> dict:
    """Judges the run's load generator (analysis/selfcheck.py) and stores the verdict."""
    from analysis.selfcheck import self_check
    from loadtest.prompts import resolve_format
    from store import runs

    run = queries.get_run(store_path, run_id)
    load = (run.get("config") or {}).get("load") or {}
    exact = (resolve_format(load.get("prompt_format", "auto"), run.get("target") == "builtin") == "token_ids"
             and load.get("endpoint", "completions") == "completions")
    check = self_check(queries.get_requests(store_path, run_id), queries.get_steps(store_path, run_id), exact,
                       one_token_per_chunk=run.get("target") == "builtin")
    runs.set_self_check(store_path, run_id, check)
    return check
