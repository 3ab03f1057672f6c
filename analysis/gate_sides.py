"""The gate's sides as data: which stored runs a side names, whether they ran one load, which
repeats cannot be trusted, and the result object every renderer takes.

Pure (no store, no clock): `servelab gate` (servelab/gate.py) and the dashboard's Gate page
both resolve their sides and build their result here, so both show the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from analysis.gate import GateOptions, GateVerdict, MetricSpec, judge
from analysis.gate_metrics import repeat_values
from servelab.config import LoadConfig

class SideError(ValueError):
    """A side that cannot be judged as given (the CLI turns it into one `servelab: error:` line)."""


EXIT_CODES = {"no change": 0, "regressed": 1, "inconclusive": 3}
# Load fields that do not change what the target is asked to do.
# The seed too: another seed is another sample of the same load (a sweep's repeats each have
# their own), so stored repeats with different seeds gate against each other.
_LOAD_IGNORED = ("api_key_env", "timeout_s", "drain_s", "seed")
_LOAD_PATHS = ("trace_path", "dataset_path", "paraphrase_path")


def _sweep_match(rows: list[Mapping[str, Any]], token: str) -> list[str]:
    """Runs of a sweep: `SWEEP_ID`, `SWEEP_ID:SETUP` or `SWEEP_ID:SETUP@LOAD` (LOAD: the
    point's rate in req/s, or its users for a closed-loop grid)."""
    sweep, _, rest = token.partition(":")
    setup, _, load = rest.partition("@")
    runs = [r for r in rows if r.get("sweep_id") == sweep]
    if not runs:
        return []
    if setup:
        runs = [r for r in runs if r.get("setup") == setup]
        if not runs:
            names = sorted({r.get("setup") or "" for r in rows if r.get("sweep_id") == sweep})
            raise SideError(f"sweep {sweep} has no setup {setup!r} (its setups: {', '.join(names)})")
    if load:
        try:
            want = float(load)
        except ValueError:
            raise SideError(f"{token!r}: the load after '@' must be a number (req/s, or users)") from None
        runs = [r for r in runs if want in (r.get("rate"), r.get("users"))]
        if not runs:
            raise SideError(f"sweep {sweep} has no point at load {load} for setup {setup or '(any)'}")
    return [r["run_id"] for r in runs]


def ids_named(runs: Iterable[Mapping[str, Any]], text: str, store: str) -> list[str]:
    """Run ids for comma-separated run ids, labels and sweep points (`SWEEP_ID[:SETUP[@LOAD]]`)
    among `runs` (rows of the run listing), in the order given, oldest first within a label;
    SideError names a token that matches none."""
    rows = sorted(runs, key=lambda r: (r["created_at"] or "", r["run_id"]))
    ids: list[str] = []
    for token in (t.strip() for t in text.split(",") if t.strip()):
        found = [r["run_id"] for r in rows if r["run_id"] == token] or \
                [r["run_id"] for r in rows if r["label"] == token] or _sweep_match(rows, token)
        if not found:
            raise SideError(f"no run, label or sweep {token!r} in {store}")
        ids += [i for i in found if i not in ids]
    if not ids:
        raise SideError(f"no runs named in {text!r}")
    return ids


def load_key(load: dict[str, Any]) -> dict[str, Any]:
    """A stored load reduced to what it asks of the target (paths compared by file name).
    Through the current model first, so a run from an older servelab gets today's defaults."""
    try:
        load = LoadConfig.model_validate(load).model_dump(mode="json")
    except ValueError:
        pass  # compared as stored
    out = {k: v for k, v in load.items() if k not in _LOAD_IGNORED}
    for k in _LOAD_PATHS:
        if out.get(k):
            out[k] = Path(out[k]).name
    return out


def difference(a: dict, b: dict) -> str:
    """The first three keys whose values differ, as `key A vs B`."""
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys[:3])


def one_load(side: str, loads: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The one load all of a side's runs ran, from (run id, stored load) pairs; SideError if two differ."""
    first_id, first = loads[0]
    for run_id, load in loads[1:]:
        if load_key(load) != load_key(first):
            raise SideError(f"the {side}'s runs {first_id} and {run_id} ran different loads: "
                            f"{difference(load_key(first), load_key(load))}")
    return first


def same_load(stored: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The one load of two sides' (name, load) pairs; SideError when they differ."""
    (side0, load0), rest = stored[0], stored[1:]
    for side, load in rest:
        if load_key(load) != load_key(load0):
            raise SideError(f"the sides ran different loads: {difference(load_key(load0), load_key(load))} "
                            f"({side0} vs {side})")
    return load0


def untrusted_reason(side: str, run_id: str, summary: Mapping[str, Any]) -> str | None:
    """Why a repeat's numbers cannot be trusted (not completed, failed self-check), or None."""
    check = summary.get("self_check") or {}
    if summary.get("status") != "completed":
        return f"{side} run {run_id} is {summary.get('status')}"
    if check and not check.get("passed"):
        why = "; ".join(check.get("reasons") or []) or "see `servelab summary`"
        return f"{side} run {run_id} failed its self-check: {why}"
    return None


def gate_result(verdict: GateVerdict, repeats: int, load: dict[str, Any],
                sides: dict[str, dict]) -> dict[str, Any]:
    """The JSON-ready result every renderer takes: the verdict (analysis.gate.GateVerdict),
    its exit code, the repeats wanted, the load, and each side's spec and runs."""
    return {**verdict.to_dict(), "exit_code": EXIT_CODES[verdict.verdict], "repeats": repeats,
            "load": load_key(load), **sides}


def judge_summaries(baseline: Sequence[Mapping[str, Any]], candidate: Sequence[Mapping[str, Any]],
                    untrusted: list[str], specs: Sequence[MetricSpec], repeats: int, alpha: float,
                    load: dict[str, Any], sides: dict[str, dict]) -> dict[str, Any]:
    """Both sides' run summaries (one per repeat) judged metric by metric: the gate's result."""
    opts = GateOptions(alpha=alpha, min_repeats=repeats)
    verdict = judge(specs, repeat_values(baseline, specs), repeat_values(candidate, specs), opts, untrusted)
    return gate_result(verdict, repeats, load, sides)
