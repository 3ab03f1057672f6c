"""Spool -> store: ingest one step's JSONL files in one transaction, and recover dead runs.

Owns the mapping from spool records (docs/architecture.md, "Spool files") to the
`requests`, `samples` and `steps` tables. Ingest is idempotent: it replaces the step's
rows, commits, and only then deletes the spool files, so a kill at any point leaves
either the old rows plus the spool, or the new rows (plus, maybe, the spool again).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from servelab.spoolfile import REQUEST_KEYS, SAMPLE_KEYS, STEP_KEYS
from store.runs import (
    pending_steps, release_lock, remove_empty_spool, run_spool_dir, spool_files,
    spool_root, try_lock,
)
from store.schema import StoreBusyError, StoreError, connect_read, connect_write, upgrade, utcnow

_I64, _I32, _F64, _STR = pa.int64(), pa.int32(), pa.float64(), pa.string()

# Arrow types of the spool contract's keys (servelab/spoolfile.py): the `requests` and
# `samples` columns are run_id, step, then a line's keys in order. A key without a type here
# fails at import, so the contract and the tables cannot drift apart unnoticed.
_TYPES: dict[str, pa.DataType] = {
    "run_id": _STR, "step": _I32, "req_id": _STR, "producer": _STR, "user_id": _I32,
    "t_sched_ns": _I64, "t_send_ns": _I64, "wall_send_ns": _I64, "t_first_ns": _I64,
    "t_last_ns": _I64, "chunk_ns": pa.list_(_I64), "status": _STR, "http_status": _I32,
    "error": _STR, "prompt_tokens": _I32, "output_tokens": _I32,
    "prompt_tokens_client": _I32, "output_tokens_client": _I32, "max_tokens": _I32,
    "server": _STR, "source": _STR, "device": _STR,
    "t_ns": _I64, "wall_ns": _I64, "power_w": _F64, "energy_j": _F64,
    "gpu_util_pct": _F64, "mem_util_pct": _F64, "mem_used_bytes": _I64,
    "mem_total_bytes": _I64, "sm_clock_mhz": _F64, "mem_clock_mhz": _F64, "temp_c": _F64,
    "throttle_reasons": _I64, "proc_gpu_mem_bytes": _I64, "cpu_pct": _F64,
    "rss_bytes": _I64, "pid": _I32, "role": _STR,
}  # fmt: skip
REQUEST_COLUMNS: dict[str, pa.DataType] = {k: _TYPES[k] for k in (*STEP_KEYS, *REQUEST_KEYS)}
SAMPLE_COLUMNS: dict[str, pa.DataType] = {k: _TYPES[k] for k in (*STEP_KEYS, *SAMPLE_KEYS)}


@dataclass
class Spool:
    """Everything parsed from one step directory."""

    requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # by req_id, last wins
    samples: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # engine_samples rows (servelab/telemetry.py)
    meta: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # producer -> events
    producers: set[str] = field(default_factory=set)  # load producers: requests or meta files
    skipped: int = 0


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Parsed objects and the count of lines that are not a JSON object (e.g. cut by a kill)."""
    records, skipped = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                skipped += 1
                continue
            if isinstance(obj, dict):
                records.append(obj)
            else:
                skipped += 1
    return records, skipped


def _valid_request(r: dict[str, Any]) -> bool:
    # t_send_ns may be null: a request cancelled before it was sent is still recorded.
    return isinstance(r.get("req_id"), str) and isinstance(r.get("status"), str)


def read_spool(step_dir: Path) -> Spool:
    """Parse every spool file of one step; malformed lines and records are counted, not raised."""
    spool = Spool()
    for path in spool_files(step_dir):
        kind, _, producer = path.stem.partition("-")
        records, skipped = _read_jsonl(path)
        spool.skipped += skipped
        if kind == "requests":
            spool.producers.add(producer)
            for r in records:
                if _valid_request(r):
                    spool.requests[r["req_id"]] = {"producer": producer, **r}
                else:
                    spool.skipped += 1
        elif kind == "meta":
            spool.producers.add(producer)
            spool.meta.setdefault(producer, []).extend(records)
        elif kind == "metrics":
            good = [m for m in records if isinstance(m.get("t_ns"), int) and isinstance(m.get("name"), str)]
            spool.skipped += len(records) - len(good)
            spool.metrics.extend(good)
        else:
            good = [{"producer": producer, **s} for s in records if isinstance(s.get("t_ns"), int)]
            spool.skipped += len(records) - len(good)
            spool.samples.extend(good)
    return spool


def _column(values: list[Any], typ: pa.DataType) -> pa.Array:
    """One typed column; values of the wrong type become null rather than failing the step."""
    try:
        return pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([_coerce(v, typ) for v in values], type=typ)


def _coerce(v: Any, typ: pa.DataType) -> Any:
    try:
        pa.array([v], type=typ)
        return v
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return None


def _table(rows: list[dict[str, Any]], columns: dict[str, pa.DataType], given: dict[str, list[Any]]) -> pa.Table:
    """Columns of `rows` typed like the store table; `given` supplies ready-made columns."""
    return pa.table({
        name: _column(given[name] if name in given else [r.get(name) for r in rows], typ)
        for name, typ in columns.items()
    })


def requests_table(run_id: str, step: int, requests: list[dict[str, Any]]) -> pa.Table:
    """The spool request records as a table shaped like the `requests` table."""
    n = len(requests)
    return _table(requests, REQUEST_COLUMNS, {
        "run_id": [run_id] * n, "step": [step] * n,
        "chunk_ns": [r.get("chunk_ns") or [] for r in requests],
        "server": [None if r.get("server") is None else json.dumps(r["server"]) for r in requests],
    })


def samples_table(run_id: str, step: int, samples: list[dict[str, Any]]) -> pa.Table:
    """The spool sample records as a table shaped like the `samples` table."""
    n = len(samples)
    return _table(samples, SAMPLE_COLUMNS, {"run_id": [run_id] * n, "step": [step] * n})


def step_bounds(spool: Spool) -> dict[str, Any]:
    """t_start_ns, wall_start_ns, t_end_ns and status of a step, from its meta events.

    start = earliest `start` over producers; end = latest `stop`, or, when some producer
    has no `stop` (it was killed), the latest of those stops and every request's
    t_last_ns / t_send_ns. Status is `completed` only if every producer wrote `end`.
    """
    starts, stops, ended = [], [], set()
    for producer, events in spool.meta.items():
        for e in events:
            t = e.get("t_ns")
            if not isinstance(t, int):
                continue
            if e.get("event") == "start":
                starts.append((t, e.get("wall_ns")))
            elif e.get("event") == "stop":
                stops.append(t)
            elif e.get("event") == "end":
                ended.add(producer)
    stopped = {p for p, ev in spool.meta.items() if any(e.get("event") == "stop" for e in ev)}
    ends = list(stops)
    if not spool.producers or stopped != spool.producers:
        for r in spool.requests.values():
            t = r.get("t_last_ns") if isinstance(r.get("t_last_ns"), int) else r.get("t_send_ns")
            if isinstance(t, int):
                ends.append(t)
    t_start, wall_start = min(starts) if starts else (None, None)
    complete = bool(spool.producers) and ended >= spool.producers
    return {"t_start_ns": t_start, "wall_start_ns": wall_start if isinstance(wall_start, int) else None,
            "t_end_ns": max(ends) if ends else None,
            "status": "completed" if complete else "interrupted"}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def client_figures(spool: Spool) -> dict[str, Any]:
    """What the load producers reported about themselves in their stop/end events:
    client_cpu_pct and client_stall_max_ms (max over producers and over both events: issuing,
    and issuing plus drain), scheduled and capped (sums over producers, the last event saying;
    None if none did)."""
    cpu: list[float] = []
    stall: list[float] = []
    scheduled: list[int] = []
    capped: list[int] = []
    for events in spool.meta.values():
        said = [e for e in events if e.get("event") in ("stop", "end")]
        cpu.extend(e["cpu_pct"] for e in said if _number(e.get("cpu_pct")))
        stall.extend(e["stall_max_ms"] for e in said if _number(e.get("stall_max_ms")))
        for key, out in (("scheduled", scheduled), ("capped", capped)):
            values = [e[key] for e in said if _number(e.get(key))]
            out.extend(values[-1:])
    return {"client_cpu_pct": max(cpu) if cpu else None, "client_stall_max_ms": max(stall) if stall else None,
            "scheduled": sum(scheduled) if scheduled else None, "capped": sum(capped) if capped else None}


def length_forcing(spool: Spool) -> bool | None:
    """Whether the step's requests carried ignore_eos/min_tokens, as each producer's warm-up
    found (its `start` event): False if any went without them, None if none said."""
    said = [e["length_forcing"] for events in spool.meta.values() for e in events
            if e.get("event") == "start" and isinstance(e.get("length_forcing"), bool)]
    return all(said) if said else None


def _write_step(con, run_id: str, step: int, spool: Spool) -> dict[str, Any]:
    """Replace one step's rows and update its step row, inside the caller's transaction."""
    bounds = step_bounds(spool)
    req = requests_table(run_id, step, list(spool.requests.values()))
    smp = samples_table(run_id, step, spool.samples)
    con.execute("DELETE FROM requests WHERE run_id = ? AND step = ?", [run_id, step])
    con.execute("DELETE FROM samples WHERE run_id = ? AND step = ?", [run_id, step])
    # Registered views die with the short-lived connection, so a failed insert needs no cleanup.
    con.register("_spool_requests", req)
    con.register("_spool_samples", smp)
    con.execute(f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) SELECT * FROM _spool_requests")
    con.execute(f"INSERT INTO samples ({', '.join(SAMPLE_COLUMNS)}) SELECT * FROM _spool_samples")
    con.unregister("_spool_requests")
    con.unregister("_spool_samples")
    _write_metrics(con, run_id, step, spool.metrics)
    con.execute("INSERT INTO steps (run_id, step) VALUES (?, ?) ON CONFLICT DO NOTHING", [run_id, step])
    con.execute(
        "UPDATE steps SET t_start_ns = coalesce(?, t_start_ns), t_end_ns = coalesce(?, t_end_ns),"
        " wall_start_ns = coalesce(?, wall_start_ns), status = ? WHERE run_id = ? AND step = ?",
        [bounds["t_start_ns"], bounds["t_end_ns"], bounds["wall_start_ns"], bounds["status"], run_id, step],
    )
    client = client_figures(spool)
    con.execute("UPDATE steps SET client_cpu_pct = ?, client_stall_max_ms = ?, scheduled = ?, capped = ?"
                " WHERE run_id = ? AND step = ?",
                [client["client_cpu_pct"], client["client_stall_max_ms"], client["scheduled"], client["capped"],
                 run_id, step])
    forcing = length_forcing(spool)
    if forcing is not None:  # the stored config says what was sent, not what was asked ("auto")
        con.execute("UPDATE runs SET config = json_merge_patch(config, ?) WHERE run_id = ?",
                    [json.dumps({"load": {"ignore_eos": forcing}}), run_id])
    return bounds


ENGINE_SAMPLE_COLUMNS: dict[str, pa.DataType] = {"run_id": _STR, "step": _I32, "t_ns": _I64, "wall_ns": _I64,
                                                 "name": _STR, "labels": _STR, "value": _F64}


def _write_metrics(con, run_id: str, step: int, metrics: list[dict[str, Any]]) -> None:
    """Replace the step's engine_samples (the target's /metrics, scraped during the step)."""
    con.execute("DELETE FROM engine_samples WHERE run_id = ? AND step = ?", [run_id, step])
    if not metrics:
        return
    n = len(metrics)
    table = _table(metrics, ENGINE_SAMPLE_COLUMNS, {"run_id": [run_id] * n, "step": [step] * n})
    con.register("_spool_metrics", table)
    con.execute(f"INSERT INTO engine_samples ({', '.join(ENGINE_SAMPLE_COLUMNS)}) SELECT * FROM _spool_metrics")
    con.unregister("_spool_metrics")


def ingest_step(path: str | Path, run_id: str, step: int) -> dict[str, Any]:
    """Ingest one step's spool into the store in one transaction, then delete the spool files.

    Returns {"requests", "samples", "skipped_lines", "status"}. With no spool files left
    (already ingested) it changes nothing and returns zeros with status None.
    """
    step_dir = run_spool_dir(path, run_id) / f"step-{int(step)}"
    files = spool_files(step_dir) if step_dir.is_dir() else []
    if not files:
        return {"requests": 0, "samples": 0, "skipped_lines": 0, "status": None}
    spool = read_spool(step_dir)
    with connect_write(path) as con:
        con.begin()
        try:
            bounds = _write_step(con, run_id, int(step), spool)
            con.commit()
        except duckdb.ConstraintException as exc:
            con.rollback()
            raise StoreError(f"step {step} of run {run_id} repeats request ids stored for another step"
                             f" (req_id must be unique within a run); its spool is kept in {step_dir}") from exc
        except BaseException:
            con.rollback()
            raise
    for f in files:
        f.unlink(missing_ok=True)
    try:
        step_dir.rmdir()
    except OSError:
        pass  # a producer left something else there; keep it
    return {"requests": len(spool.requests), "samples": len(spool.samples),
            "skipped_lines": spool.skipped, "status": bounds["status"]}


def _run_status(path: str | Path, run_id: str) -> str | None:
    if not Path(path).is_file():
        return None
    with connect_read(path) as con:
        row = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
    return row[0] if row else None


def _mark_interrupted(path: str | Path, run_id: str, known: bool, error: str | None) -> None:
    with connect_write(path) as con:
        if known:
            con.execute("UPDATE runs SET status = 'interrupted', ended_at = ?, error = coalesce(?, error)"
                        " WHERE run_id = ?", [utcnow(), error, run_id])
        else:
            con.execute(
                "INSERT INTO runs (run_id, status, created_at, ended_at, error) VALUES (?, 'interrupted', ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [run_id, utcnow(), utcnow(), error or "recovered from a spool with no run row"],
            )


def _recover_one(path: str | Path, run_dir: Path) -> bool:
    """Ingest and close one run whose lock we hold; True if it needed recovery."""
    run_id = run_dir.name
    steps = pending_steps(run_dir)
    status = _run_status(path, run_id)
    if status is None and not steps:
        remove_empty_spool(path, run_id)  # a run that died before its row was written
        return False
    error = None
    for step in steps:
        try:
            ingest_step(path, run_id, step)
        except StoreBusyError:
            raise
        except StoreError as exc:  # keep going: one bad step must not block every command
            error = f"recovery could not ingest: {exc}"
    if status in (None, "running"):
        _mark_interrupted(path, run_id, known=status is not None, error=error)
    remove_empty_spool(path, run_id)
    return status in (None, "running") or bool(steps)


def recover(path: str | Path) -> list[str]:
    """Ingest the spool of every run whose owner died and mark it `interrupted`.

    A run directory is recovered when its `.lock` can be taken (no live owner) and its
    run row is still `running` or it still holds spool files. Runs that finished keep
    their status; only their leftover spool is ingested. A run is skipped (left for the
    next call) while another process keeps the store busy. First, a store written by an
    older servelab is upgraded (`schema.upgrade`): the commands that call this may write,
    while every read-only open never does.
    """
    try:
        upgrade(path)
    except StoreBusyError:
        pass  # a writer holds it, and so has migrated it; the read that follows says so if not
    root = spool_root(path)
    if not root.is_dir():
        return []
    recovered = []
    for run_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        lock = run_dir / ".lock"
        fd = try_lock(lock, create=not lock.exists() and bool(pending_steps(run_dir)))
        if fd is None:
            continue
        try:
            if os.fstat(fd).st_nlink and _recover_one(path, run_dir):
                recovered.append(run_dir.name)
        except StoreBusyError:
            continue  # another process is writing; the next command will recover this run
        finally:
            release_lock(fd)
    return recovered
