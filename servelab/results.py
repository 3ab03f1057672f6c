"""Reading results back: the store's records through the pure analysis core."""

from __future__ import annotations

from analysis.report import TOP_OPERATORS, top_operators
from servelab.config import SLOTerm
from store import ingest, queries

__all__ = ["TOP_OPERATORS", "record_self_check", "run_summary", "top_operators"]


def run_summary(store_path: str, run_id: str, slo: list[SLOTerm] | None = None) -> dict:
    """The summary object of `servelab summary --json`; `slo` overrides the run's own.

    The CLI is a writer: it first ingests what a dead run left (and upgrades an older
    store); then the one read path, `store.load.load_run` and `analysis.report.run_report`,
    which the dashboard's run page uses too."""
    from analysis.report import run_report
    from store.load import load_run

    ingest.recover(store_path)
    return run_report(load_run(store_path, run_id), slo)


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
