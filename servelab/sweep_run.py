"""Running a sweep: each setup's search, point by point; every point an ordinary stored run.

Order: setups as listed, and within a setup repeat 0, 1, ...; a capacity search's next
load comes from analysis/capacity.py given the repeat's points so far (repeat k > 0 starts
at the earlier repeats' mean estimate), a grid's from the list. Because the next load is a
pure function of the stored points, `--resume` only reloads them and carries on: finished
points are never measured again. A point's row is written after its run is stored, so
Ctrl-C or kill -9 keeps every finished point, and the sweep row says `interrupted`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from analysis.capacity import estimate_repeat, next_load
from analysis.sweep_result import probe_of
from servelab import __version__
from servelab.engines import Engine, command_line, launched
from servelab.errors import UserError
from servelab.sweep_spec import CapacitySearch, SweepSpec
from store import ingest
from store import sweeps as store_sweeps

Progress = Callable[[dict], None]


@dataclass
class PointEvent:
    """What the progress display is told when a point starts."""

    index: int  # 1-based count of points measured so far in this process, this one included
    estimated_total: int
    setup: str
    load: float
    repeat: int
    repeats: int
    closed_loop: bool


def planned_next(spec: SweepSpec, points: list[dict[str, Any]], hint: float | None) -> float | None:
    """The next load of one (setup, repeat) given its points in probe order, or None."""
    probes = [probe_of(p) for p in points]
    if isinstance(spec.search, CapacitySearch):
        s = spec.search
        return next_load(probes, s.low, s.high, s.rel_tol, s.max_probes, hint)
    done = {p.load for p in probes}
    return next((x for x in spec.search.loads if x not in done), None)


def estimated_points(spec: SweepSpec) -> int:
    """Points the whole sweep should take (grid: exact; capacity: a typical search)."""
    if not isinstance(spec.search, CapacitySearch):
        return len(spec.search.loads) * spec.repeats * len(spec.setups)
    s = spec.search
    first = 3 + math.ceil(math.log2(max(2.0, math.log(s.high / s.low) / math.log1p(s.rel_tol))) / 2)
    return (min(first, s.max_probes) + min(3, s.max_probes) * (spec.repeats - 1)) * len(spec.setups)


def _hint(spec: SweepSpec, earlier: list[list[dict[str, Any]]]) -> float | None:
    if not isinstance(spec.search, CapacitySearch):
        return None
    values = [e.value for e in (estimate_repeat([probe_of(p) for p in pts]) for pts in earlier)
              if e.value is not None]
    return sum(values) / len(values) if values else None


def check_reachable(spec: SweepSpec, timeout_s: float = 5.0) -> None:
    """Every URL setup answers HTTP (any status) before anything is written."""
    import httpx

    from servelab.targets import normalize_url

    for name, setup in spec.setups.items():
        if setup.target is None:
            continue
        try:
            url = normalize_url(setup.target)
        except UserError as exc:
            raise UserError(f"setup {name}: {exc}") from None
        try:
            httpx.get(url + "/v1/models", timeout=timeout_s)
        except httpx.HTTPError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"setup {name}: cannot reach {url}: {reason}") from None


def preflight(spec: SweepSpec) -> None:
    """Everything that can fail before a sweep row exists: URLs, optional packages, haproxy."""
    check_reachable(spec)
    for name, setup in spec.setups.items():
        if setup.engine:
            try:
                command_line(setup.engine, setup.args, setup.python, 0)
            except UserError as exc:
                raise UserError(f"setup {name}: {exc}") from None
        server = setup.server
        if server is None:
            continue
        if server.semantic_cache:
            from serving.semantic import missing_packages

            if problem := missing_packages():
                raise UserError(f"setup {name}: {problem}")
        if server.replicas > 1:
            from servelab.replicas import haproxy_path

            haproxy_path()


def point_record(summary: dict[str, Any], spec: SweepSpec, sweep_id: str, setup: str, repeat: int,
                 probe: int, load: float) -> dict[str, Any]:
    """The stored point: what the search decides on, and the figures the pages show."""
    from analysis.capacity import margin

    terms = spec.slo_terms
    req_s, out_s, tot_s = summary.get("req_s"), summary.get("output_tok_s"), summary.get("total_tok_s")
    per_req = (lambda x: None if x is None or not req_s else x / req_s)
    prompt_per_req = None if tot_s is None or out_s is None or not req_s else (tot_s - out_s) / req_s
    hw = summary.get("hardware") or {}
    point = {
        "setup": setup, "repeat": repeat, "probe": probe,
        "rate": None if spec.closed_loop else load, "users": int(load) if spec.closed_loop else None,
        "run_id": summary["run_id"], "status": summary["status"],
        "self_check_passed": (summary.get("self_check") or {}).get("passed"),
        "slo_met": bool(summary.get("slo_met")),
        "margin": margin(summary.get("slo_terms") or [], [t.threshold_ms for t in terms]),
        "slo_attainment": summary.get("slo_attainment"), "offered_rate": summary.get("offered_rate"),
        "achieved_rate": summary.get("achieved_rate"), "req_s": req_s, "output_tok_s": out_s,
        "total_tok_s": tot_s, "error_rate": summary.get("error_rate"),
        "output_tokens_per_req": per_req(out_s), "prompt_tokens_per_req": prompt_per_req,
        **{k: summary.get(k) for k in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")},
        "power_w": hw.get("power_w_mean"), "energy_j_per_output_token": hw.get("j_per_output_token"),
    }
    flat = {f"{m}_{q}_ms": (point.get(f"{m}_ms") or {}).get(q)
            for m in ("ttft", "tpot", "e2e") for q in ("p50", "p99")}
    flat["itl_p99_ms"] = (point.get("itl_ms") or {}).get("p99")
    return {**point, **flat, "sweep_id": sweep_id, "point": point}


class SweepRunner:
    """Drives one sweep to its end (or to an interruption); `run()` returns the sweep id."""

    def __init__(self, spec: SweepSpec, spec_path: str, store: str,
                 on_point: Callable[[PointEvent], None] | None = None, on_progress: Progress | None = None):
        self.spec, self.spec_path, self.store = spec, spec_path, store
        self.on_point, self.on_progress = on_point, on_progress
        self.measured = 0
        self.sweep_id: str | None = None  # known once run() has started
        self.engine: Engine | None = None  # the current setup's, when it is an engine setup

    def start(self, resume: str | None) -> str:
        ingest.recover(self.store)
        store_sweeps.recover_sweeps(self.store)
        if resume:
            return resume
        preflight(self.spec)
        return store_sweeps.new_sweep_id()

    def run(self, resume: str | None = None) -> str:
        sweep_id = self.sweep_id = self.start(resume)
        if resume:
            preflight(self.spec)
        with store_sweeps.SweepLock(self.store, sweep_id):
            if resume:
                store_sweeps.restart_sweep(self.store, sweep_id)
            else:
                store_sweeps.create_sweep(self.store, sweep_id, self.spec.name,
                                          self.spec.model_dump(mode="json"), self.spec_path, self.spec.slo,
                                          __version__)
            status, error = "failed", None
            try:
                self._all_setups(sweep_id)
                status = "completed"
            except KeyboardInterrupt:
                status, error = "interrupted", "interrupted by the user"
                raise
            except UserError as exc:
                error = str(exc)
                raise
            finally:
                from servelab.sweeps import sweep_summary

                result = sweep_summary(self.store, sweep_id, status=status) if status == "completed" else None
                store_sweeps.finish_sweep(self.store, sweep_id, status, result, error)
        return sweep_id

    def _all_setups(self, sweep_id: str) -> None:
        stored = store_sweeps.get_points(self.store, sweep_id)
        for setup in self.spec.setups:
            by_repeat = [[p for p in stored if p["setup"] == setup and p["repeat"] == k]
                         for k in range(self.spec.repeats)]
            with self._engine_for(setup) as self.engine:
                for k in range(self.spec.repeats):
                    self._repeat(sweep_id, setup, k, by_repeat)

    @contextlib.contextmanager
    def _engine_for(self, setup: str) -> Iterator[Engine | None]:
        """An engine setup's engine, started once for all its points (a cold start can take
        minutes), stopped before the next setup's; None for the other kinds."""
        s = self.spec.setups[setup]
        if s.engine is None:
            yield None
            return
        progress = self.on_progress

        def note(text: str) -> None:
            if progress:
                progress({"note": f"setup {setup}: {text}"})

        with launched(s.engine, s.args, s.python, s.ready_timeout_s, note) as engine:
            yield engine

    def _repeat(self, sweep_id: str, setup: str, k: int, by_repeat: list[list[dict[str, Any]]]) -> None:
        points = sorted(by_repeat[k], key=lambda p: p["probe"])
        hint = _hint(self.spec, by_repeat[:k])
        while (load := planned_next(self.spec, points, hint)) is not None:
            points.append(self._measure(sweep_id, setup, k, len(points), load))
            by_repeat[k] = points

    def _measure(self, sweep_id: str, setup: str, repeat: int, probe: int, load: float) -> dict[str, Any]:
        from servelab.results import run_summary
        from servelab.runner import execute_run

        self.measured += 1
        if self.on_point:
            self.on_point(PointEvent(self.measured, estimated_points(self.spec), setup, load, repeat,
                                     self.spec.repeats, self.spec.closed_loop))
        unit = "users" if self.spec.closed_loop else "req/s"
        label = f"{self.spec.name}/{setup} repeat {repeat} {load:.4g} {unit}"
        cfg = self.spec.run_config(setup, load, repeat, label)
        run_id = execute_run(cfg, self.store, self.on_progress, sweep_id=sweep_id, setup=setup, engine=self.engine)
        row = point_record(run_summary(self.store, run_id), self.spec, sweep_id, setup, repeat, probe, load)
        store_sweeps.add_point(self.store, row)
        return row["point"]


def spec_matches(stored: dict[str, Any], spec: SweepSpec) -> bool:
    """Whether a spec given with --resume is the one the sweep started with."""
    return json.dumps(stored, sort_keys=True) == json.dumps(spec.model_dump(mode="json"), sort_keys=True)
