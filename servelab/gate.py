"""`servelab gate`'s orchestration: resolve both sides, measure what must be measured now
(interleaved), read every repeat's summary, and hand the numbers to analysis/gate.py.

A side is either stored runs (run ids, labels and sweep points `SWEEP_ID[:SETUP[@LOAD]]` in
the store, comma-separated, or a Parquet export folder from `servelab export`, read through a temporary store) or a target
to measure now (an OpenAI-compatible URL, or `builtin`). Both sides must have run the same
load; a measured-now side runs the load given by the flags, or, when no load flag was
given, the stored side's load. When both are measured now their repeats alternate
A B B A A B B A ..., so slow drift of the machine falls on both sides alike.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servelab.config import LoadConfig, RunConfig, SamplerConfig, ServerConfig
from servelab.errors import UserError

EXIT_CODES = {"no change": 0, "regressed": 1, "inconclusive": 3}
# Load fields that do not change what the target is asked to do.
# The seed too: another seed is another sample of the same load (a sweep's repeats each have
# their own), so stored repeats with different seeds gate against each other.
_LOAD_IGNORED = ("api_key_env", "timeout_s", "drain_s", "seed")
_LOAD_PATHS = ("trace_path", "dataset_path", "paraphrase_path")


@dataclass
class Side:
    name: str  # "baseline" or "candidate"
    spec: str  # as the user gave it
    target: str | None = None  # measured now: 'builtin' or a URL; None: stored runs
    store: str = ""
    run_ids: list[str] = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _sweep_match(rows: list[dict[str, Any]], token: str) -> list[str]:
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
            raise UserError(f"sweep {sweep} has no setup {setup!r} (its setups: {', '.join(names)})")
    if load:
        try:
            want = float(load)
        except ValueError:
            raise UserError(f"{token!r}: the load after '@' must be a number (req/s, or users)") from None
        runs = [r for r in runs if want in (r.get("rate"), r.get("users"))]
        if not runs:
            raise UserError(f"sweep {sweep} has no point at load {load} for setup {setup or '(any)'}")
    return [r["run_id"] for r in runs]


def _stored_ids(store: str, text: str) -> list[str]:
    """Run ids for comma-separated run ids, labels and sweep points in `store`, in order given."""
    from store import ingest, queries

    if not Path(store).is_file():
        raise UserError(f"{text!r} is neither a URL, 'builtin', an export folder, nor a run in a store "
                        f"(no store at {store})")
    ingest.recover(store)
    rows = sorted(queries.list_runs(store), key=lambda r: (r["created_at"] or "", r["run_id"]))
    ids: list[str] = []
    for token in (t.strip() for t in text.split(",") if t.strip()):
        found = [r["run_id"] for r in rows if r["run_id"] == token] or \
                [r["run_id"] for r in rows if r["label"] == token] or _sweep_match(rows, token)
        if not found:
            raise UserError(f"no run, label or sweep {token!r} in {store}")
        ids += [i for i in found if i not in ids]
    if not ids:
        raise UserError(f"no runs named in {text!r}")
    return ids


def resolve_side(name: str, text: str, store: str, scratch: Path) -> Side:
    """What `--baseline`/`--candidate` names: a target to measure or stored runs."""
    text = text.strip()
    if text == "builtin" or _is_url(text):
        return Side(name, text, target=text, store=store)
    if Path(text).is_dir():
        from store import exchange

        tmp_store = str(scratch / f"{name}.duckdb")
        imported = exchange.import_runs(tmp_store, text)["imported"]
        if not imported:
            raise UserError(f"the export {text} holds no runs")
        return Side(name, text, store=tmp_store, run_ids=imported)
    return Side(name, text, store=store, run_ids=_stored_ids(store, text))


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


def _difference(a: dict, b: dict) -> str:
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys[:3])


def stored_load(side: Side) -> dict[str, Any] | None:
    """The one load all of a stored side's runs ran; None for a side measured now."""
    from store import queries

    if side.target is not None:
        return None
    loads = [(i, (queries.get_run(side.store, i)["config"] or {}).get("load") or {}) for i in side.run_ids]
    first_id, first = loads[0]
    for run_id, load in loads[1:]:
        if load_key(load) != load_key(first):
            raise UserError(f"the {side.name}'s runs {first_id} and {run_id} ran different loads: "
                            f"{_difference(load_key(first), load_key(load))}")
    return first


def agree_on_load(sides: list[Side], flags_load: LoadConfig, flags_given: bool) -> LoadConfig:
    """The one load of the gate; a disagreement between the sides (or the flags) is an error."""
    stored = [(s, load) for s in sides if (load := stored_load(s)) is not None]
    if not stored:
        return flags_load
    (side0, load0), rest = stored[0], stored[1:]
    for side, load in rest:
        if load_key(load) != load_key(load0):
            raise UserError(f"the sides ran different loads: {_difference(load_key(load0), load_key(load))} "
                            f"({side0.name} vs {side.name})")
    if flags_given:
        mine = load_key(flags_load.model_dump(mode="json"))
        if mine != load_key(load0):
            raise UserError(f"the load flags differ from the {side0.name}'s stored load: "
                            f"{_difference(load_key(load0), mine)} (drop the flags to reuse it)")
    return LoadConfig(**load0)


def interleaved(measured: list[Side], repeats: int) -> list[Side]:
    """The order of the repeats: A B B A A B B A ... (one side alone: A A A ...)."""
    if len(measured) < 2:
        return measured * repeats
    a, b = measured
    return [s for i in range(repeats) for s in ((a, b) if i % 2 == 0 else (b, a))]


def measure(sides: list[Side], load: LoadConfig, repeats: int, store: str, server: ServerConfig,
            label: str, sampling: bool, note: Callable[[str], None]) -> None:
    """Runs the repeats of every side measured now, interleaved, into `store`."""
    from servelab.runner import execute_run

    order = interleaved([s for s in sides if s.target is not None], repeats)
    for k, side in enumerate(order, 1):
        cfg = RunConfig(target=side.target, load=load, server=server, label=f"{label}:{side.name}",
                        profile=SamplerConfig(enabled=sampling))
        note(f"repeat {k}/{len(order)}: {side.name} ({side.target}) ...")
        side.run_ids.append(execute_run(cfg, store, on_progress=None))


def read_summaries(side: Side) -> list[str]:
    """Fills `side.summaries`; returns a reason for each repeat that cannot be trusted."""
    from servelab.results import run_summary

    untrusted = []
    for run_id in side.run_ids:
        s = run_summary(side.store, run_id, slo=[])
        side.summaries.append(s)
        check = s.get("self_check") or {}
        if s.get("status") != "completed":
            untrusted.append(f"{side.name} run {run_id} is {s.get('status')}")
        elif check and not check.get("passed"):
            why = "; ".join(check.get("reasons") or []) or "see `servelab summary`"
            untrusted.append(f"{side.name} run {run_id} failed its self-check: {why}")
    return untrusted


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="servelab-gate-") as tmp:
        yield Path(tmp)


@dataclass
class GateRequest:
    """Everything `servelab gate` was asked (the CLI builds it from flags)."""

    baseline: str
    candidate: str
    store: str
    load: LoadConfig
    load_given: bool  # a load flag was given on the command line
    specs: list  # analysis.gate.MetricSpec
    repeats: int = 6
    alpha: float = 0.05
    server: ServerConfig = field(default_factory=ServerConfig)
    label: str = "gate"
    sampling: bool = False


def _side_dict(side: Side) -> dict[str, Any]:
    return {"spec": side.spec, "measured_now": side.target is not None, "runs": side.run_ids}


def run_gate(req: GateRequest, note: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Resolves, measures and judges; returns the JSON-ready result with its `exit_code`."""
    from analysis.gate import GateOptions, judge
    from analysis.gate_metrics import repeat_values

    with scratch_dir() as tmp:
        a, b = (resolve_side("baseline", req.baseline, req.store, tmp),
                resolve_side("candidate", req.candidate, req.store, tmp))
        load = agree_on_load([a, b], req.load, req.load_given)
        measure([a, b], load, req.repeats, req.store, req.server, req.label, req.sampling, note)
        untrusted = read_summaries(a) + read_summaries(b)
        sides = {"baseline": _side_dict(a), "candidate": _side_dict(b)}
    opts = GateOptions(alpha=req.alpha, min_repeats=req.repeats)
    verdict = judge(req.specs, repeat_values(a.summaries, req.specs), repeat_values(b.summaries, req.specs),
                    opts, untrusted)
    return gate_result(verdict, req.repeats, load.model_dump(mode="json"), sides)


def gate_result(verdict, repeats: int, load: dict[str, Any], sides: dict[str, dict]) -> dict[str, Any]:
    """The JSON-ready result every renderer takes: the verdict (analysis.gate.GateVerdict),
    its exit code, the repeats wanted, the load, and each side's spec and runs."""
    return {**verdict.to_dict(), "exit_code": EXIT_CODES[verdict.verdict], "repeats": repeats,
            "load": load_key(load), **sides}
