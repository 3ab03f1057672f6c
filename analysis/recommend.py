"""The recommendation: the cheapest setup, and how many copies of it, that serves R req/s within the SLO.

Pure: takes a sweep result (the dict `servelab.sweeps.sweep_summary` returns), a price per
setup (dicts made by `servelab.prices`) and optional fidelity reports; returns the JSON object
`servelab recommend --json` prints. Rules (docs/metrics.md, "Recommendation"):

- a setup's planning capacity is the conservative end of its capacity interval (`ci_low`;
  the lowest repeat's estimate when the interval reaches 0, i.e. too few or too noisy
  repeats; `value` when there is no interval); when the SLO held at the highest load measured
  (`bound: "above"`) it is the highest SLO-meeting load measured, a lower bound;
- replicas = ceil(R * (1 + headroom) / planning capacity): headroom is spare capacity kept
  for bursts and for a replica being replaced, a fraction of R;
- capacity of N copies = N x one copy's (copies share nothing: each its own hardware);
- the cheapest $/hour wins; ties go to the larger planned capacity, then to the name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from analysis.cost import HOURS_PER_MONTH, setup_usd_per_hour, usd_per_unit

DEFAULT_HEADROOM = 0.1


def planning_capacity(setup: Mapping[str, Any]) -> tuple[float | None, str]:
    """(req/s to plan with, which figure it is); (None, why) when the SLO was never met."""
    cap = setup.get("capacity_req_s") or {}
    if cap.get("bound") == "below":
        return None, "misses the SLO at every load measured"
    if cap.get("bound") == "above":
        met = [p.get("req_s") for p in setup.get("points") or [] if p.get("slo_met") and p.get("req_s")]
        low = cap.get("ci_low") or (max(met) if met else None)
        return (low, "lower bound: the SLO held at the highest load measured") if low else (None, "no capacity")
    if cap.get("ci_low") is not None and cap["ci_low"] > 0:
        return float(cap["ci_low"]), "ci_low"
    repeats = [r for r in cap.get("repeats") or [] if r and r > 0]
    if cap.get("ci_low") is not None and repeats:  # the interval reaches 0: too few or too noisy repeats
        return float(min(repeats)), "lowest repeat (the interval reaches 0: too few or too noisy repeats)"
    if cap.get("value") is not None and cap["value"] > 0:
        return float(cap["value"]), "value"
    return None, "misses the SLO at every load measured"


def replicas_for(traffic: float, capacity: float, headroom: float = DEFAULT_HEADROOM) -> int:
    """Copies needed so that the planned capacity covers the traffic plus headroom.

    Formula: replicas = ceil(R * (1 + headroom) / capacity), at least 1
    """
    need = traffic * (1.0 + headroom) / capacity
    # 1e-9: 2.0000000001 from float noise must not become 3 replicas
    return max(1, math.ceil(need - 1e-9))


def _fidelity_reason(report: Mapping[str, Any] | None, min_fidelity: float | None) -> str | None:
    if min_fidelity is None or report is None:
        return None
    rate = report.get("exact_match_rate")
    if rate is not None and rate < min_fidelity:
        return (f"changes answers: greedy outputs match the baseline on {100 * rate:.0f}% of prompts, "
                f"below --min-fidelity {min_fidelity:g}")
    return None


def _candidate(setup: Mapping[str, Any], price: Mapping[str, Any] | None, traffic: float, headroom: float,
               spot_overhead: float) -> dict[str, Any]:
    """One setup planned for the traffic, or {"reason": why it cannot serve it}."""
    name = setup.get("name")
    cap, basis = planning_capacity(setup)
    if cap is None:
        return {"setup": name, "reason": basis}
    if price is None or price.get("usd_per_hour") is None:
        return {"setup": name, "reason": (price or {}).get("missing") or "no price: name its hardware in the "
                f"sweep spec or pass --price-per-hour {name}=USD"}
    n = replicas_for(traffic, cap, headroom)
    per_hour = setup_usd_per_hour(price, n, spot_overhead)
    out_per_req = setup.get("output_tokens_per_req")
    c = setup.get("capacity_req_s") or {}
    return {"setup": name, "replicas": n, "planning_capacity_req_s": cap, "capacity_basis": basis,
            "capacity_req_s": {"value": c.get("value"), "ci_low": c.get("ci_low"), "ci_high": c.get("ci_high")},
            "usd_per_hour": per_hour, "usd_per_month": per_hour * HOURS_PER_MONTH,
            # at the traffic served, idle headroom included: what the user pays per token
            "usd_per_1m_output_tokens": usd_per_unit(per_hour, None if out_per_req is None
                                                     else traffic * out_per_req, 1e6),
            "pricing": price.get("pricing"), "prices_as_of": price.get("as_of"),
            "prices_source": price.get("source")}


def _planned(c: Mapping[str, Any]) -> float:
    """What the copies hold at the planning capacity (the tie-break between equal costs)."""
    return c["replicas"] * c["planning_capacity_req_s"]


def _costs_more(c: Mapping[str, Any], best: Mapping[str, Any]) -> str:
    extra = c["usd_per_hour"] - best["usd_per_hour"]
    copies = f"{c['replicas']} cop{'y' if c['replicas'] == 1 else 'ies'}"
    if extra <= 0:  # the same $/hour: lost the tie-break
        if _planned(c) < _planned(best):
            why = (f"{best['setup']} holds more at the planning capacity ({_planned(best):.4g} vs "
                   f"{_planned(c):.4g} req/s)")
        else:
            why = f"{best['setup']} comes first by name"
        return f"costs the same ({copies} at ${c['usd_per_hour']:.4g}/h); {why}"
    pct = 100.0 * extra / best["usd_per_hour"] if best["usd_per_hour"] > 0 else float("inf")
    return (f"costs more: {copies} at ${c['usd_per_hour']:.4g}/h, +${extra:.4g}/h (+{pct:.0f}%) "
            f"over {best['setup']}")


def recommend(sweep: Mapping[str, Any], traffic: float, prices: Mapping[str, Mapping[str, Any] | None],
              headroom: float = DEFAULT_HEADROOM, fidelity: Mapping[str, Mapping[str, Any]] | None = None,
              min_fidelity: float | None = None, spot_overhead: float = 0.05) -> dict[str, Any]:
    """The cheapest setup and replica count for `traffic` req/s, the runner-up, and why the rest lost."""
    if traffic <= 0:
        raise ValueError(f"traffic must be above 0 req/s, got {traffic}")
    if headroom < 0:
        raise ValueError(f"headroom must be >= 0, got {headroom}")
    fidelity = fidelity or {}
    viable, rejected = [], []
    for setup in sweep.get("setups") or []:
        name = setup.get("name")
        report = fidelity.get(name) or setup.get("fidelity")
        cand = _candidate(setup, prices.get(name), traffic, headroom, spot_overhead)
        reason = cand.get("reason") or _fidelity_reason(report, min_fidelity)
        if reason:
            rejected.append({"setup": name, "reason": reason})
            continue
        cand["fidelity"] = report
        viable.append(cand)
    viable.sort(key=lambda c: (c["usd_per_hour"], -_planned(c), str(c["setup"])))
    rejected = [{"setup": c["setup"], "reason": _costs_more(c, viable[0]), "usd_per_hour": c["usd_per_hour"],
                 "prices_as_of": c["prices_as_of"], "prices_source": c["prices_source"]}
                for c in viable[1:]] + rejected
    best = viable[0] if viable else {}
    return {
        "setup": best.get("setup"), "replicas": best.get("replicas"),
        "capacity_req_s": best.get("capacity_req_s"),
        "usd_per_hour": best.get("usd_per_hour"), "usd_per_month": best.get("usd_per_month"),
        "usd_per_1m_output_tokens": best.get("usd_per_1m_output_tokens"),
        "runner_up": _runner_up(viable),
        "rejected": rejected,
        "prices_as_of": best.get("prices_as_of"), "prices_source": best.get("prices_source"),
        "pricing": best.get("pricing"), "traffic_req_s": traffic, "headroom": headroom,
        "planning_capacity_req_s": best.get("planning_capacity_req_s"),
        "capacity_basis": best.get("capacity_basis"),
        "changes_answers": _changes_answers(best.get("fidelity")),
        "fidelity": best.get("fidelity"),
        "sweep_id": sweep.get("sweep_id"), "slo": sweep.get("slo"),
    }


def _runner_up(viable: list[dict[str, Any]]) -> dict[str, Any] | None:
    if len(viable) < 2:
        return None
    r = viable[1]
    keys = ("setup", "replicas", "capacity_req_s", "usd_per_hour", "usd_per_month", "usd_per_1m_output_tokens",
            "prices_as_of", "prices_source")
    return {k: r[k] for k in keys}


def _changes_answers(report: Mapping[str, Any] | None) -> bool | None:
    """True when greedy outputs differ from the baseline's on any prompt; None when not measured."""
    if not report or report.get("exact_match_rate") is None:
        return None
    return report["exact_match_rate"] < 1.0
