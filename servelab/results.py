"""Reading results back: the store's records through the pure analysis core."""

from __future__ import annotations

from servelab.config import SLOTerm
from store import ingest, queries


def stored_slo(run: dict) -> list[SLOTerm]:
    return [SLOTerm.model_validate(t) for t in (run.get("config") or {}).get("slo") or []]


def run_summary(store_path: str, run_id: str, slo: list[SLOTerm] | None = None) -> dict:
    """The summary object of `servelab summary --json`; `slo` overrides the run's own."""
    from analysis.summary import summarize_run

    ingest.recover(store_path)
    run = queries.get_run(store_path, run_id)
    steps = queries.get_steps(store_path, run_id)
    requests = queries.get_requests(store_path, run_id)
    return summarize_run(run, steps, requests, slo if slo is not None else stored_slo(run))
