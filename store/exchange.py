"""Moving runs between stores (and machines) as Parquet: `servelab export` / `servelab import`.

An export is a folder:

    manifest.json          {"format": "servelab-export", "version": 1, "migrations": [...],
                            "runs": [...], "exported_at": ..., "tables": {name: rows}}
    runs.parquet, steps.parquet, requests.parquet, samples.parquet, operators.parquet,
    engine_samples.parquet (from m007_engines on: an older export without it imports too)
    traces/<run_id>-step<k>.json   the torch-profiler traces, when the store kept them

Every table is written by DuckDB's own `COPY ... TO (FORMAT parquet)`, the stored
columns as they are (raw integer-ns timestamps, the resolved config JSON, which never
holds an API key). DuckDB and pandas read the files in place (`read_parquet`), so an
export is also the way to query runs without the store.

Import inserts by column name, so an export from an older servelab (fewer columns) loads
into a newer store, its missing columns null. A run already in the target store is
skipped unless `replace` is given; each run goes in within one transaction.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from store.schema import MIGRATIONS, StoreError, connect_read, connect_write

FORMAT = "servelab-export"
VERSION = 1
REQUIRED = ("runs", "steps", "requests", "samples", "operators")  # runs first: the others refer to it
TABLES = (*REQUIRED, "engine_samples")  # written by every export; read when the export has them


def _names() -> list[str]:
    return [m.__name__.lstrip("_") for m in MIGRATIONS]


def _sql_list(ids: list[str]) -> str:
    return ", ".join("'" + i.replace("'", "''") + "'" for i in ids)


def export_runs(store: str | Path, run_ids: list[str] | None, out: str | Path) -> dict[str, Any]:
    """Write the given runs (all when None) to the folder `out`; returns the manifest."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise StoreError(f"{out} exists and is not empty: export into a new folder")
    with connect_read(store) as con:
        known = [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY created_at, run_id").fetchall()]
        ids = known if run_ids is None else list(dict.fromkeys(run_ids))
        missing = [i for i in ids if i not in known]
        if missing:
            raise StoreError(f"no run {missing[0]} in {store}")
        if not ids:
            raise StoreError(f"{store} has no runs to export")
        out.mkdir(parents=True, exist_ok=True)
        counts = {}
        for table in TABLES:
            where = f"WHERE run_id IN ({_sql_list(ids)})"
            counts[table] = (con.execute(f"SELECT count(*) FROM {table} {where}").fetchone() or (0,))[0]
            target = str(out / f"{table}.parquet").replace("'", "''")
            con.execute(f"COPY (SELECT * FROM {table} {where}) TO '{target}' (FORMAT parquet)")
        traces = [r[0] for r in con.execute(
            f"SELECT DISTINCT trace_path FROM operators WHERE run_id IN ({_sql_list(ids)})"
            " AND trace_path IS NOT NULL").fetchall()]
    kept = _copy_traces(traces, out / "traces")
    manifest = {"format": FORMAT, "version": VERSION, "migrations": _names(), "runs": ids,
                "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "tables": counts, "traces": kept}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _copy_traces(paths: list[str], dest: Path) -> int:
    n = 0
    for p in paths:
        src = Path(p)
        if src.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / src.name)
            n += 1
    return n


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The export's manifest; StoreError (one line) when `folder` is not a servelab export."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not folder.is_dir():
        raise StoreError(f"no export folder at {folder}")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreError(f"{folder} is not a servelab export (no manifest.json)") from None
    except ValueError as exc:
        raise StoreError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path} is not a servelab export manifest")
    if int(manifest.get("version") or 0) > VERSION:
        raise StoreError(f"{folder} was written by a newer servelab (export version {manifest['version']});"
                         " upgrade servelab to import it")
    unknown = [m for m in manifest.get("migrations") or [] if m not in _names()]
    if unknown:
        raise StoreError(f"{folder} was written by a newer servelab (schema {unknown[-1]}); upgrade to import it")
    for table in REQUIRED:
        if not (folder / f"{table}.parquet").is_file():
            raise StoreError(f"{folder} is incomplete: {table}.parquet is missing")
    return manifest


def _tables_in(folder: Path) -> tuple[str, ...]:
    return tuple(t for t in TABLES if t in REQUIRED or (folder / f"{t}.parquet").is_file())


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
        [table]).fetchall()]


def import_runs(store: str | Path, folder: str | Path, replace: bool = False) -> dict[str, Any]:
    """Load an export into `store` (created if missing): {"imported": [...], "skipped": [...]}."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    tables = _tables_in(folder)
    files = {t: str(folder / f"{t}.parquet").replace("'", "''") for t in tables}
    imported, skipped = [], []
    traces_dir = Path(f"{store}.traces")
    with connect_write(store) as con:
        try:
            ids = [r[0] for r in con.execute(f"SELECT run_id FROM read_parquet('{files['runs']}')").fetchall()]
        except duckdb.Error as exc:
            raise StoreError(f"cannot read {files['runs']}: {str(exc).splitlines()[0]}") from None
        present = {r[0] for r in con.execute(f"SELECT run_id FROM runs WHERE run_id IN ({_sql_list(ids)})")
                   .fetchall()} if ids else set()
        try:
            inserts = {t: _insert_sql(con, t, files[t], traces_dir) for t in tables}  # checks the columns once
        except duckdb.Error as exc:
            raise StoreError(f"cannot read {folder}: {str(exc).splitlines()[0]}") from None
        for run_id in ids:
            if run_id in present and not replace:
                skipped.append(run_id)
                continue
            con.begin()
            try:
                for table in TABLES:
                    con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                for table in tables:
                    con.execute(inserts[table], [run_id])
                con.commit()
            except duckdb.Error as exc:
                con.rollback()
                raise StoreError(f"cannot import run {run_id} from {folder}: {str(exc).splitlines()[0]}") from None
            imported.append(run_id)
    _place_traces(folder / "traces", traces_dir, imported)
    return {"imported": imported, "skipped": skipped, "runs": len(ids)}


def _insert_sql(con: duckdb.DuckDBPyConnection, table: str, file: str, traces_dir: Path) -> str:
    """INSERT of one run's rows (parameter: run_id) by column name: columns this store lacks
    are an error, columns the export lacks stay null; a trace path is pointed at this store's
    traces folder."""
    mine = _columns(con, table)
    theirs = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{file}')").fetchall()]
    extra = [c for c in theirs if c not in mine]
    if extra:
        raise StoreError(f"{file}: column {extra[0]} is unknown to this servelab; upgrade to import it")
    cols = [c for c in mine if c in theirs]
    select = ", ".join(_trace_expr(traces_dir) if (table, c) == ("operators", "trace_path") else c for c in cols)
    return f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM read_parquet('{file}') WHERE run_id = ?"


def _trace_expr(traces_dir: Path) -> str:
    """SQL: an operator's trace_path re-pointed at `<store>.traces/<file name>`."""
    base = (str(traces_dir.resolve()) + "/").replace("'", "''")
    return f"CASE WHEN trace_path IS NULL THEN NULL ELSE '{base}' || regexp_extract(trace_path, '[^/\\\\]+$') END"


def _place_traces(src: Path, dest: Path, run_ids: list[str]) -> None:
    if not src.is_dir():
        return
    for f in src.iterdir():
        if any(f.name.startswith(f"{r}-step") for r in run_ids):
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest / f.name)
