"""Sweeps in the store: the sweep row, its measured points, its lock and its recovery.

Tables (migration m006_sweeps): `sweeps` (one row per sweep: spec, status, the final
result object) and `sweep_points` (one row per measured point, with the figures the
search decided on and the point's run id; the run itself is an ordinary run whose row
carries `sweep_id` and `setup`). A point row is written only after its run is stored,
so a kill at any moment leaves every finished point and no half point.

A sweep in progress holds an exclusive flock on `<store>.sweeps/<sweep_id>.lock`; a sweep
row still `running` whose lock can be taken belongs to a dead process, and
`recover_sweeps` marks it `interrupted` (`servelab sweep --resume` carries it on).
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from store.runs import release_lock, try_lock
from store.schema import StoreError, connect_read, connect_write, utcnow

POINT_COLUMNS = ("sweep_id", "setup", "repeat", "probe", "rate", "users", "run_id", "status", "slo_met",
                 "margin", "slo_attainment", "offered_rate", "achieved_rate", "req_s", "output_tok_s",
                 "total_tok_s", "error_rate", "output_tokens_per_req", "prompt_tokens_per_req",
                 "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "itl_p99_ms", "e2e_p50_ms",
                 "e2e_p99_ms", "point")
SWEEP_COLUMNS = ("sweep_id", "name", "status", "created_at", "started_at", "ended_at", "spec", "spec_path",
                 "slo", "result", "error", "version")


def new_sweep_id() -> str:
    """s<UTC date>-<UTC time>-<4 hex>, e.g. s20261203-211500-ab12 (sortable, like run ids)."""
    return datetime.now(timezone.utc).strftime("s%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def lock_path(path: str | Path, sweep_id: str) -> Path:
    return Path(f"{path}.sweeps") / f"{sweep_id}.lock"


class SweepLock:
    """Holds `<store>.sweeps/<id>.lock` while a sweep runs (the kernel frees it on any death)."""

    def __init__(self, path: str | Path, sweep_id: str):
        self.file = lock_path(path, sweep_id)
        self.sweep_id = sweep_id
        self._fd: int | None = None

    def __enter__(self) -> SweepLock:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self._fd = try_lock(self.file, create=True)
        if self._fd is None:
            raise StoreError(f"sweep {self.sweep_id} is running in another process")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            release_lock(self._fd)
            self._fd = None


def create_sweep(path: str | Path, sweep_id: str, name: str, spec: dict[str, Any], spec_path: str,
                 slo: str, version: str) -> None:
    now = utcnow()
    with connect_write(path) as con:
        con.execute("INSERT INTO sweeps (sweep_id, name, status, created_at, started_at, spec, spec_path, slo, version)"
                    " VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                    [sweep_id, name, now, now, json.dumps(spec), spec_path, slo, version])


def restart_sweep(path: str | Path, sweep_id: str) -> None:
    """A resumed sweep is `running` again (its ended_at cleared)."""
    with connect_write(path) as con:
        con.execute("UPDATE sweeps SET status = 'running', ended_at = NULL, error = NULL WHERE sweep_id = ?",
                    [sweep_id])


def finish_sweep(path: str | Path, sweep_id: str, status: str, result: dict[str, Any] | None,
                 error: str | None = None) -> None:
    with connect_write(path) as con:
        con.execute("UPDATE sweeps SET status = ?, ended_at = ?, result = ?, error = ? WHERE sweep_id = ?",
                    [status, utcnow(), None if result is None else json.dumps(result), error, sweep_id])


def add_point(path: str | Path, row: dict[str, Any]) -> None:
    """Insert one measured point (POINT_COLUMNS; `point` is the JSON of the whole point)."""
    values = [json.dumps(row["point"]) if c == "point" else row.get(c) for c in POINT_COLUMNS]
    with connect_write(path) as con:
        con.execute(f"INSERT OR REPLACE INTO sweep_points ({', '.join(POINT_COLUMNS)}, created_at)"
                    f" VALUES ({', '.join('?' * len(POINT_COLUMNS))}, ?)", [*values, utcnow()])


def get_points(path: str | Path, sweep_id: str) -> list[dict[str, Any]]:
    """Every point of a sweep as its stored JSON, in order (setup, repeat, probe)."""
    with connect_read(path) as con:
        rows = con.execute("SELECT point FROM sweep_points WHERE sweep_id = ? ORDER BY setup, repeat, probe",
                           [sweep_id]).fetchall()
    return [json.loads(r[0]) for r in rows]


def _sweep_dict(row: tuple) -> dict[str, Any]:
    out = dict(zip(SWEEP_COLUMNS, row))
    for key in ("created_at", "started_at", "ended_at"):
        out[key] = None if out[key] is None else out[key].isoformat(timespec="seconds") + "Z"
    for key in ("spec", "result"):
        out[key] = None if out[key] is None else json.loads(out[key])
    return out


def get_sweep(path: str | Path, sweep_id: str) -> dict[str, Any]:
    with connect_read(path) as con:
        row = con.execute(f"SELECT {', '.join(SWEEP_COLUMNS)} FROM sweeps WHERE sweep_id = ?", [sweep_id]).fetchone()
    if row is None:
        raise StoreError(f"no sweep {sweep_id} in {path} (see `servelab sweeps`)")
    return _sweep_dict(row)


def list_sweeps(path: str | Path) -> list[dict[str, Any]]:
    """Every sweep, newest first, with its point count (spec and result left out)."""
    with connect_read(path) as con:
        rows = con.execute(
            f"SELECT {', '.join('s.' + c for c in SWEEP_COLUMNS)}, coalesce(p.n, 0) FROM sweeps s"
            " LEFT JOIN (SELECT sweep_id, count(*) AS n FROM sweep_points GROUP BY sweep_id) p USING (sweep_id)"
            " ORDER BY s.created_at DESC, s.sweep_id DESC").fetchall()
    out = []
    for row in rows:
        d = _sweep_dict(row[: len(SWEEP_COLUMNS)])
        d["points"] = row[-1]
        d["setups"] = list(((d.pop("spec") or {}).get("setups") or {}))
        d.pop("result")
        out.append(d)
    return out


def recover_sweeps(path: str | Path) -> list[str]:
    """Mark `interrupted` every `running` sweep whose process is gone (its lock is free)."""
    if not Path(path).is_file():
        return []
    with connect_read(path) as con:
        running = [r[0] for r in con.execute("SELECT sweep_id FROM sweeps WHERE status = 'running'").fetchall()]
    dead = []
    for sweep_id in running:
        lock = lock_path(path, sweep_id)
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = try_lock(lock, create=True)
        if fd is None:
            continue  # alive
        try:
            finish_sweep(path, sweep_id, "interrupted", None, "the sweep process stopped before the end")
            dead.append(sweep_id)
        finally:
            release_lock(fd)
    return dead
