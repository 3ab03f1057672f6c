"""Builders of sweep result dicts in the shape `servelab.sweeps.sweep_summary` returns.

The cost, frontier, attribution and recommendation tests feed these to the pure functions
and to `servelab recommend --from-json`, so they exercise the same shape the sweeps engine
prints (one setup per `setup(...)`, one measured load per `point(...)`).
"""

from __future__ import annotations

import statistics


def point(repeat: int, rate: float, slo_met: bool, ttft_p99: float, tpot_p99: float = 20.0,
          out_per_req: float = 64.0, req_s: float | None = None, power_w: float | None = None,
          j_per_tok: float | None = None) -> dict:
    req = rate if req_s is None else req_s

    def lat(p99):
        return {"p50": p99 / 2, "p90": p99 * 0.8, "p95": p99 * 0.9, "p99": p99, "p999": p99 * 1.1, "mean": p99 / 2}

    return {"repeat": repeat, "probe": 0, "rate": rate, "users": None, "run_id": f"r-{repeat}-{rate}",
            "status": "completed", "slo_met": slo_met, "margin": 0.5 if slo_met else 1.5,
            "slo_attainment": 1.0 if slo_met else 0.5, "offered_rate": rate, "achieved_rate": req,
            "req_s": req, "output_tok_s": req * out_per_req, "total_tok_s": req * (out_per_req + 256.0),
            "error_rate": 0.0, "ttft_ms": lat(ttft_p99), "tpot_ms": lat(tpot_p99), "itl_ms": {}, "e2e_ms": {},
            "power_w": power_w, "energy_j_per_output_token": j_per_tok}


def setup(name: str, repeats: list[float] | None, ci: tuple[float, float] | None = None, *,
          price: float | None = None, hardware: str | None = None, out_per_req: float = 64.0,
          prompt_per_req: float = 256.0, bound: str | None = None, points: list[dict] | None = None) -> dict:
    """A setup whose capacity is the mean of `repeats`, with the given interval."""
    value = statistics.fmean(repeats) if repeats and bound is None else None
    lo, hi = ci if ci else (None, None)
    cap = {"value": value, "ci_low": lo, "ci_high": hi, "bound": bound, "repeats": repeats or [], "method": "t"}
    out = {k: (None if v is None else v * out_per_req) for k, v in cap.items() if k in ("value", "ci_low", "ci_high")}
    out.update(bound=bound, repeats=[r * out_per_req for r in repeats or []], method="t")
    return {"name": name, "kind": "builtin", "server": {"model": "tiny", "replicas": 1}, "target": None,
            "hardware": hardware, "price_per_hour": price, "capacity_req_s": cap, "capacity_output_tok_s": out,
            "output_tokens_per_req": out_per_req, "prompt_tokens_per_req": prompt_per_req,
            "points_used": len(points or []), "points": points or []}


def sweep(*setups: dict, slo: str = "ttft_p99<=500ms,tpot_p99<=50ms") -> dict:
    return {"sweep_id": "s20261203-211500-ab12", "name": "levers-small", "status": "completed", "slo": slo,
            "search": {"kind": "capacity", "low": 0.5, "high": 64, "rel_tol": 0.05}, "repeats": 3,
            "duration_s": 20, "setups": list(setups)}
