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

from analysis.gate_sides import EXIT_CODES, gate_result, load_key  # noqa: F401 (the CLI's names)
from analysis.gate_sides import SideError, difference, ids_named, judge_summaries, one_load, same_load
from analysis.gate_sides import untrusted_reason
from servelab.config import LoadConfig, RunConfig, SamplerConfig, ServerConfig
from servelab.errors import UserError


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


def _stored_ids(store: str, text: str) -> list[str]:
    """Run ids for comma-separated run ids, labels and sweep points in `store`, in order given."""
    from store import ingest, queries

    if not Path(store).is_file():
        raise UserError(f"{text!r} is neither a URL, 'builtin', an export folder, nor a run in a store "
                        f"(no store at {store})")
    ingest.recover(store)
    try:
        return ids_named(queries.list_runs(store), text, store)
    except SideError as exc:
        raise UserError(str(exc)) from None


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


def stored_load(side: Side) -> dict[str, Any] | None:
    """The one load all of a stored side's runs ran; None for a side measured now."""
    from store import queries

    if side.target is not None:
        return None
    try:
        return one_load(side.name, [(i, (queries.get_run(side.store, i)["config"] or {}).get("load") or {})
                                    for i in side.run_ids])
    except SideError as exc:
        raise UserError(str(exc)) from None


def agree_on_load(sides: list[Side], flags_load: LoadConfig, flags_given: bool) -> LoadConfig:
    """The one load of the gate; a disagreement between the sides (or the flags) is an error."""
    stored = [(s, load) for s in sides if (load := stored_load(s)) is not None]
    if not stored:
        return flags_load
    side0 = stored[0][0]
    try:
        load0 = same_load([(s.name, load) for s, load in stored])
    except SideError as exc:
        raise UserError(str(exc)) from None
    if flags_given:
        mine = load_key(flags_load.model_dump(mode="json"))
        if mine != load_key(load0):
            raise UserError(f"the load flags differ from the {side0.name}'s stored load: "
                            f"{difference(load_key(load0), mine)} (drop the flags to reuse it)")
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
        side.summaries.append(run_summary(side.store, run_id, slo=[]))
        if (why := untrusted_reason(side.name, run_id, side.summaries[-1])) is not None:
            untrusted.append(why)
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
    with scratch_dir() as tmp:
        a, b = (resolve_side("baseline", req.baseline, req.store, tmp),
                resolve_side("candidate", req.candidate, req.store, tmp))
        load = agree_on_load([a, b], req.load, req.load_given)
        measure([a, b], load, req.repeats, req.store, req.server, req.label, req.sampling, note)
        untrusted = read_summaries(a) + read_summaries(b)
        sides = {"baseline": _side_dict(a), "candidate": _side_dict(b)}
    return judge_summaries(a.summaries, b.summaries, untrusted, req.specs, req.repeats, req.alpha,
                           load.model_dump(mode="json"), sides)
