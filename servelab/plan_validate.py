"""`servelab plan --validate`: replay the profile's peak against the planned fleet and one replica fewer.

Two ordinary runs (servelab/runner.py `execute_run`, stored like any run) of the built-in
server with the plan's setup, `--replicas N` behind the real HAProxy front
(servelab/replicas.py), then N - 1. The load is the traffic's peak:
- a trace: its own arrivals and lengths, from the busiest `duration_s x scale` trace seconds
  of the peak interval, replayed at the plan's `--traffic-scale` (so at the rate planned for);
- a constant rate or an hourly CSV: Poisson arrivals at the peak rate, the sweep's workload.
The sweep's workload caps (output_cap, max_context, ...) and SLO apply. The plan holds when
the SLO is met at N; it should be missed at N - 1 (else the plan has more than it needs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ContextManager

from servelab.plan_traffic import Traffic

DEFAULT_DURATION_S = 30.0
DRAIN_S = 5.0


def _load(sweep: dict, traffic: Traffic, plan: dict, duration_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(LoadConfig fields of the replay, what was replayed, for the report)."""
    from analysis.plan import densest_window

    load = {**(sweep.get("workload") or {}), "mode": "open", "duration_s": duration_s, "drain_s": DRAIN_S,
            "seed": 0}
    i, bucket = plan["peak_index"], traffic.bucket_s
    if traffic.kind != "trace":
        load.update(arrival="poisson", rate=plan["peak_req_s"])
        return load, {"arrivals": "poisson", "offered_req_s": plan["peak_req_s"]}
    # trace seconds: the profile's intervals are in replay seconds (trace seconds / scale)
    scale, t = traffic.scale, traffic.trace_t_s
    width = duration_s * scale
    start = densest_window(t, i * bucket * scale, (i + 1) * bucket * scale, width)
    sent = int(((t >= start) & (t < start + width)).sum())
    load.update(arrival="trace", workload="trace", trace_path=traffic.source, time_scale=scale,
                trace_start_s=start)
    load.pop("rate", None)
    return load, {"arrivals": "trace", "trace_start_s": start, "trace_seconds": width,
                  "offered_req_s": sent / duration_s}


def _one(cfg_fields: dict, store: str, on_progress: Callable | None) -> dict[str, Any]:
    from servelab.config import RunConfig
    from servelab.results import run_summary
    from servelab.runner import execute_run

    cfg = RunConfig.model_validate(cfg_fields)
    run_id = execute_run(cfg, store, on_progress)
    s = run_summary(store, run_id)
    return {"replicas": cfg.server.replicas, "run_id": run_id, "slo_met": bool(s.get("slo_met")),
            "slo_attainment": s.get("slo_attainment"), "req_s": s.get("req_s"),
            "offered_rate": s.get("offered_rate"), "error_rate": s.get("error_rate"),
            "ttft_p99_ms": (s.get("ttft_ms") or {}).get("p99"), "tpot_p99_ms": (s.get("tpot_ms") or {}).get("p99"),
            "self_check_passed": (s.get("self_check") or {}).get("passed")}


def validate(sweep: dict, plan: dict, traffic: Traffic, store: str, duration_s: float = DEFAULT_DURATION_S,
             on_run: Callable[[int, float], ContextManager[Callable | None]] | None = None) -> dict[str, Any]:
    """The "validation" object: both runs' SLO attainment and the verdict, or why it was not run.

    `on_run(replicas, duration_s)` is entered around each run and gives its progress callback.
    """
    from analysis.plan import validation_verdict

    setup = next(s for s in sweep["setups"] if s["name"] == plan["setup"])
    if setup.get("target") or setup.get("kind") != "builtin":
        return {"status": "skipped", "verdict": "not run",
                "reason": f"setup {setup['name']} is a URL target ({setup.get('target')}): the validation "
                          "replays against the built-in server only"}
    load, replayed = _load(sweep, traffic, plan, duration_s)
    slo = sweep.get("slo") or ""
    n = plan["replicas_peak"]
    runs = []
    for replicas in (n, n - 1):
        if replicas < 1:
            break
        server = {**(setup.get("server") or {}), "replicas": replicas}
        fields = {"target": "builtin", "label": f"plan-validate/{setup['name']} {replicas} replica(s)",
                  "load": load, "server": server, "slo": _terms(slo)}
        with (on_run(replicas, duration_s) if on_run else contextlib.nullcontext()) as progress:
            runs.append(_one(fields, store, progress))
    at_plan, fewer = runs[0], (runs[1] if len(runs) > 1 else None)
    return {"status": "run", "duration_s": duration_s, "replayed": replayed, "slo": slo,
            "at_plan": at_plan, "one_fewer": fewer,
            "note": None if fewer else "the plan is one replica: one fewer is none, nothing to run",
            "verdict": validation_verdict(at_plan, fewer)}


def _terms(slo: str) -> list[dict]:
    from analysis.slo import parse_slo

    return [t.model_dump() if hasattr(t, "model_dump") else dict(t) for t in parse_slo(slo)] if slo else []
