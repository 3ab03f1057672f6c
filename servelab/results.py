"""Reading results back: the store's records through the pure analysis core."""

from __future__ import annotations

from servelab.config import SLOTerm
from store import ingest, profiles, queries


def run_summary(store_path: str, run_id: str, slo: list[SLOTerm] | None = None) -> dict:
    """The summary object of `servelab summary --json`; `slo` overrides the run's own."""
    from analysis.summary import summarize_run

    ingest.recover(store_path)
    run = queries.get_run(store_path, run_id)
    steps = queries.get_steps(store_path, run_id)
    requests = queries.get_requests(store_path, run_id)
    samples = profiles.get_samples(store_path, run_id)
    return summarize_run(run, steps, requests, slo, samples)  # slo None: the run's own


def record_self_check(store_path: str, run_id: str) -> dict:
    """Judges the run's load generator (analysis/selfcheck.py) and stores the verdict."""
    from analysis.selfcheck import self_check
    from loadtest.prompts import resolve_format
    from store import runs

    run = queries.get_run(store_path, run_id)
    load = (run.get("config") or {}).get("load") or {}
    exact = (resolve_format(load.get("prompt_format", "auto"), run.get("target") == "builtin") == "token_ids"
             and load.get("endpoint", "completions") == "completions")
    check = self_check(queries.get_requests(store_path, run_id), queries.get_steps(store_path, run_id), exact)
    runs.set_self_check(store_path, run_id, check)
    return check
