"""The DuckDB schema, its migrations, and the two ways to open the store.

Owns: the ordered list of named migration functions (recorded in `_migrations`),
`connect_write` / `connect_read` with retry on DuckDB's file lock, and `StoreError`,
the one exception every store function raises for a user-facing problem.

DuckDB admits one writing process or several read-only ones, never both, so every
connection here is meant to be short-lived: open, do one thing, close.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb


class StoreError(Exception):
    """A store problem worth one line to the user (missing file, busy file, unknown run)."""


class StoreBusyError(StoreError):
    """The store file stayed locked by another process for the whole retry period."""


def _m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, status TEXT, created_at TIMESTAMP,
            started_at TIMESTAMP, ended_at TIMESTAMP, target TEXT, label TEXT,
            config JSON, host JSON, version TEXT, error TEXT)""")
    con.execute("""
        CREATE TABLE steps (
            run_id TEXT, step INTEGER, mode TEXT, users INTEGER, rate DOUBLE,
            duration_s DOUBLE, warmup_s DOUBLE, t_start_ns BIGINT, t_end_ns BIGINT,
            wall_start_ns BIGINT, status TEXT, PRIMARY KEY (run_id, step))""")
    con.execute("""
        CREATE TABLE requests (
            run_id TEXT, step INTEGER, req_id TEXT, producer TEXT, user_id INTEGER,
            t_sched_ns BIGINT, t_send_ns BIGINT, wall_send_ns BIGINT,
            t_first_ns BIGINT, t_last_ns BIGINT, chunk_ns BIGINT[], status TEXT,
            http_status INTEGER, error TEXT, prompt_tokens INTEGER,
            output_tokens INTEGER, prompt_tokens_client INTEGER,
            output_tokens_client INTEGER, max_tokens INTEGER, server JSON,
            PRIMARY KEY (run_id, req_id))""")
    con.execute("""
        CREATE TABLE samples (
            run_id TEXT, step INTEGER, producer TEXT, source TEXT, device TEXT,
            t_ns BIGINT, wall_ns BIGINT, power_w DOUBLE, energy_j DOUBLE,
            gpu_util_pct DOUBLE, mem_util_pct DOUBLE, mem_used_bytes BIGINT,
            mem_total_bytes BIGINT, sm_clock_mhz DOUBLE, mem_clock_mhz DOUBLE,
            temp_c DOUBLE, throttle_reasons BIGINT, proc_gpu_mem_bytes BIGINT,
            cpu_pct DOUBLE, rss_bytes BIGINT, pid INTEGER, role TEXT)""")


def _m002_operators(con: duckdb.DuckDBPyConnection) -> None:
    """Top operators of a step's torch-profiler window (store/profiles.py), rank 1 = most self time."""
    con.execute("""
        CREATE TABLE operators (
            run_id TEXT, step INTEGER, rank INTEGER, name TEXT, calls BIGINT,
            self_cpu_us DOUBLE, self_cuda_us DOUBLE, cpu_total_us DOUBLE,
            cuda_total_us DOUBLE, window_s DOUBLE, trace_path TEXT,
            PRIMARY KEY (run_id, step, rank))""")


def _m003_self_check(con: duckdb.DuckDBPyConnection) -> None:
    """The load generator's self-check (analysis/selfcheck.py): per step what the worker
    reported about itself, per run the verdict."""
    con.execute("ALTER TABLE runs ADD COLUMN self_check JSON")
    con.execute("ALTER TABLE steps ADD COLUMN client_cpu_pct DOUBLE")
    con.execute("ALTER TABLE steps ADD COLUMN scheduled BIGINT")
    con.execute("ALTER TABLE steps ADD COLUMN capped BIGINT")


def _m004_client_stall(con: duckdb.DuckDBPyConnection) -> None:
    """The worker's stall watch (loadtest/step.py): its worst lateness per step."""
    con.execute("ALTER TABLE steps ADD COLUMN client_stall_max_ms DOUBLE")


def _m005_profiler_window(con: duckdb.DuckDBPyConnection) -> None:
    """When the torch-profiler window ran (the requests' clock, CLOCK_MONOTONIC ns): from the
    start's reply to the stop's reply, so the requests it slowed can be told apart."""
    con.execute("ALTER TABLE operators ADD COLUMN window_start_ns BIGINT")
    con.execute("ALTER TABLE operators ADD COLUMN window_end_ns BIGINT")


def _m006_sweeps(con: duckdb.DuckDBPyConnection) -> None:
    """Sweeps (store/sweeps.py): one row per sweep, one per measured point; every point is an
    ordinary run, tagged on its run row with the sweep and the setup."""
    con.execute("""
        CREATE TABLE sweeps (
            sweep_id TEXT PRIMARY KEY, name TEXT, status TEXT, created_at TIMESTAMP,
            started_at TIMESTAMP, ended_at TIMESTAMP, spec JSON, spec_path TEXT, slo TEXT,
            result JSON, error TEXT, version TEXT)""")
    con.execute("""
        CREATE TABLE sweep_points (
            sweep_id TEXT, setup TEXT, repeat INTEGER, probe INTEGER, rate DOUBLE,
            users INTEGER, run_id TEXT, status TEXT, slo_met BOOLEAN, margin DOUBLE,
            slo_attainment DOUBLE, offered_rate DOUBLE, achieved_rate DOUBLE, req_s DOUBLE,
            output_tok_s DOUBLE, total_tok_s DOUBLE, error_rate DOUBLE,
            output_tokens_per_req DOUBLE, prompt_tokens_per_req DOUBLE,
            ttft_p50_ms DOUBLE, ttft_p99_ms DOUBLE, tpot_p50_ms DOUBLE, tpot_p99_ms DOUBLE,
            itl_p99_ms DOUBLE, e2e_p50_ms DOUBLE, e2e_p99_ms DOUBLE, point JSON,
            created_at TIMESTAMP, PRIMARY KEY (sweep_id, setup, repeat, probe))""")
    con.execute("ALTER TABLE runs ADD COLUMN sweep_id TEXT")
    con.execute("ALTER TABLE runs ADD COLUMN setup TEXT")


def _m007_engines(con: duckdb.DuckDBPyConnection) -> None:
    """A run's setup as queryable columns (engine, its version, model, dtype, host hardware;
    servelab/runner.py setup_columns), and the engine's own Prometheus metrics scraped during
    the run (servelab/telemetry.py): one row per series per scrape, on the requests' clock."""
    for column in ("engine", "engine_version", "model", "dtype", "hardware"):
        con.execute(f"ALTER TABLE runs ADD COLUMN {column} TEXT")
    con.execute("""
        CREATE TABLE engine_samples (
            run_id TEXT, step INTEGER, t_ns BIGINT, wall_ns BIGINT, name TEXT,
            labels TEXT, value DOUBLE)""")


# Append only; never edit or reorder a migration that has shipped.
MIGRATIONS = [_m001_initial, _m002_operators, _m003_self_check, _m004_client_stall, _m005_profiler_window,
              _m006_sweeps, _m007_engines]


def utcnow() -> datetime:
    """Naive UTC now: every TIMESTAMP column in the store is UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction; return their names."""
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMP)")
    done = {row[0] for row in con.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for fn in MIGRATIONS:
        name = fn.__name__.lstrip("_")
        if name in done:
            continue
        con.begin()
        try:
            fn(con)
            con.execute("INSERT INTO _migrations VALUES (?, ?)", [name, utcnow()])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        applied.append(name)
    return applied


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "lock" in text.lower() or "different configuration" in text


def _connect_retrying(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    """Open `path`, retrying with backoff while another process holds DuckDB's file lock."""
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise StoreError(f"cannot open store {path}: {str(exc).splitlines()[0]}") from exc
            if time.monotonic() + delay > deadline:
                raise StoreBusyError(
                    f"store {path} is busy (another process is writing to it); try again shortly"
                ) from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def connect_write(path: str | Path, timeout_s: float = 10.0) -> duckdb.DuckDBPyConnection:
    """Open the store read-write (creating file and parent dir), migrated to the latest schema."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect_retrying(path, read_only=False, timeout_s=timeout_s)
    try:
        migrate(con)
    except BaseException:
        con.close()
        raise
    return con


Readable = str | Path | duckdb.DuckDBPyConnection  # a store's path, or a connection already open on it


@contextmanager
def reading(source: Readable) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection for one query: `source` itself when it is an open connection
    (left open for its owner: many reads share one open, store/load.py), else a short-lived
    `connect_read(source)`."""
    if isinstance(source, duckdb.DuckDBPyConnection):
        yield source
        return
    with connect_read(source) as con:
        yield con


def store_name(source: Readable) -> str:
    """The store's path for an error line, from a path or an open connection."""
    if not isinstance(source, duckdb.DuckDBPyConnection):
        return str(source)
    row = source.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return str(row[0]) if row else "the store"


def connect_read(path: str | Path, timeout_s: float = 5.0) -> duckdb.DuckDBPyConnection:
    """Open the store read-only; never writes. StoreError if it does not exist, is not a
    servelab store, or was written by an older servelab (one line saying how to upgrade it:
    any writing command does, `upgrade` below); StoreBusyError if locked past timeout_s."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"no store at {path}")
    con = _connect_retrying(path, read_only=True, timeout_s=timeout_s)
    missing = _missing_migrations(con, path)
    if missing:
        con.close()
        raise StoreError(f"store {path} was written by an older servelab (its schema lacks {missing[0]}): "
                         f"`servelab runs --store {path}` upgrades it once")
    return con


def upgrade(path: str | Path, timeout_s: float = 10.0) -> list[str]:
    """Apply the migrations an existing store lacks, in a brief write; their names. For
    commands that may write (the CLI's); the dashboard and every read-only open never do."""
    path = Path(path)
    if not path.is_file():
        return []
    con = _connect_retrying(path, read_only=True, timeout_s=timeout_s)
    missing = _missing_migrations(con, path)
    con.close()
    if not missing:
        return []
    connect_write(path, timeout_s=timeout_s).close()
    return missing


def _missing_migrations(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Names of migrations not yet applied; StoreError if this is not a servelab store."""
    try:
        applied = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
    except duckdb.Error:
        con.close()
        raise StoreError(f"{path} is a DuckDB file but not a servelab store") from None
    return [m.__name__.lstrip("_") for m in MIGRATIONS if m.__name__.lstrip("_") not in applied]
