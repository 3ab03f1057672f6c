"""A sweep's result object from its stored points: capacity per setup with its interval.

Pure: the sweep row (its spec as stored) and its points in, the object of `servelab
sweep --json` / `servelab sweep-summary --json` out (shape in docs/architecture.md,
"Sweeps"). Each setup's repeats are estimated independently (analysis/capacity.py) and
combined into {value, ci_low, ci_high, method, repeats, bound}; a setup whose SLO held at
the highest load measured, or failed at the lowest, gets that bound, no value, and a
message saying so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analysis.capacity import Probe, bracket, bound_message, capacity, estimate_repeat


def probe_of(point: Mapping[str, Any]) -> Probe:
    load = point["users"] if point.get("users") is not None else point["rate"]
    return Probe(float(load), bool(point.get("slo_met")), point.get("margin"), point.get("req_s"),
                 point.get("output_tok_s"), point.get("output_tokens_per_req"))


def _mean(values: Sequence[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def _near_capacity(repeats: list[list[Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    """The points that bracket each repeat's crossing (what the per-request means come from)."""
    out = []
    for pts in repeats:
        b = bracket([probe_of(p) for p in pts])
        loads = {x.load for x in (b.lo, b.hi) if x is not None}
        out += [p for p in pts if probe_of(p).load in loads]
    return out


def setup_result(name: str, setup: Mapping[str, Any], points: Sequence[Mapping[str, Any]], repeats: int,
                 closed_loop: bool) -> dict[str, Any]:
    by_repeat = [sorted((p for p in points if p["repeat"] == k), key=lambda p: p["probe"]) for k in range(repeats)]
    by_repeat = [pts for pts in by_repeat if pts]
    estimates = [estimate_repeat([probe_of(p) for p in pts], open_loop=not closed_loop) for pts in by_repeat]
    cap = capacity(estimates)
    near = _near_capacity(by_repeat)
    unit = "users" if closed_loop else "req/s"
    return {
        "name": name,
        "kind": "builtin" if setup.get("server") is not None else "engine" if setup.get("engine") else "url",
        "server": setup.get("server"),
        "target": setup.get("target"),
        "engine": setup.get("engine"),
        "hardware": setup.get("hardware"),
        "price_per_hour": setup.get("price_per_hour"),
        "capacity_req_s": cap["req_s"],
        "capacity_output_tok_s": cap["output_tok_s"],
        "capacity_message": bound_message(cap["req_s"]["bound"], estimates, unit),
        "repeats_done": len(by_repeat),
        "crossings": [e.value for e in estimates],  # closed loop: in users
        "output_tokens_per_req": _mean([p.get("output_tokens_per_req") for p in near]),
        "prompt_tokens_per_req": _mean([p.get("prompt_tokens_per_req") for p in near]),
        "points_used": len(points),
        "points": [dict(p) for p in sorted(points, key=lambda p: (p["repeat"], p["probe"]))],
    }


def summarize_sweep(sweep: Mapping[str, Any], points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The result object of one sweep (row as stored, with its spec) over its points."""
    spec = sweep.get("spec") or {}
    search = spec.get("search") or {}
    closed = search.get("kind") == "grid" and search.get("users") is not None
    repeats = int(spec.get("repeats") or 1)
    setups = [setup_result(name, s, [p for p in points if p["setup"] == name], repeats, closed)
              for name, s in (spec.get("setups") or {}).items()]
    return {
        "sweep_id": sweep["sweep_id"], "name": sweep.get("name"), "status": sweep.get("status"),
        "slo": sweep.get("slo"), "search": search, "repeats": repeats, "duration_s": spec.get("duration_s"),
        "workload": spec.get("workload") or {}, "closed_loop": closed,
        "created_at": sweep.get("created_at"), "ended_at": sweep.get("ended_at"), "error": sweep.get("error"),
        "points_total": len(points), "setups": setups,
    }
