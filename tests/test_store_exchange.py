"""Parquet export/import (store/exchange.py, `servelab export` / `servelab import`): runs move
between stores whole, their summaries unchanged, and bad input is one line."""

from __future__ import annotations

import json

import duckdb
import pyarrow.parquet as pq
import pytest

import store_fixtures as fx
from servelab.results import run_summary
from store import exchange, profiles, queries
from store.schema import StoreError


def _source(tmp_path):
    path = fx.build_store(tmp_path / "src.duckdb")
    fx.add_hardware_run(path)
    trace = profiles.trace_path(path, fx.HARDWARE_RUN, 0)
    trace.write_text('{"traceEvents": []}')
    with duckdb.connect(str(path)) as con:
        con.execute("UPDATE operators SET trace_path = ?", [str(trace)])
    return path


def _without_trace_paths(summary: dict) -> dict:
    return {**summary, "operators": [{k: v for k, v in op.items() if k != "trace_path"}
                                     for op in summary["operators"]]}


def test_exported_runs_import_whole_with_the_same_summaries(tmp_path):
    src = _source(tmp_path)
    out = tmp_path / "export"
    manifest = exchange.export_runs(src, None, out)
    assert manifest["runs"] == [fx.OPEN_RUN, fx.CLOSED_RUN, fx.HARDWARE_RUN]
    assert manifest["traces"] == 1 and manifest["tables"]["operators"] == 2
    assert json.loads((out / "manifest.json").read_text()) == manifest
    # Parquet that DuckDB reads in place, raw integer-ns timestamps kept as they were.
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out / 'requests.parquet'}')").fetchall()[0][0]
    assert n == manifest["tables"]["requests"] > 0
    assert str(pq.read_schema(out / "requests.parquet").field("t_send_ns").type) == "int64"

    dst = tmp_path / "dst.duckdb"
    result = exchange.import_runs(dst, out)
    assert result == {"imported": manifest["runs"], "skipped": [], "runs": 3}
    assert [r["run_id"] for r in queries.list_runs(dst)] == [r["run_id"] for r in queries.list_runs(src)]
    for run_id in manifest["runs"]:
        assert _without_trace_paths(run_summary(str(dst), run_id)) == _without_trace_paths(run_summary(str(src), run_id))
        assert queries.get_run(dst, run_id)["config"] == queries.get_run(src, run_id)["config"]
    (op, *_) = profiles.get_operators(dst, fx.HARDWARE_RUN)
    assert op["trace_path"] == str(profiles.trace_path(dst, fx.HARDWARE_RUN, 0).resolve())
    assert profiles.trace_path(dst, fx.HARDWARE_RUN, 0).read_text() == '{"traceEvents": []}'


def test_reimport_skips_runs_already_there_unless_replace(tmp_path):
    src = _source(tmp_path)
    out = tmp_path / "export"
    exchange.export_runs(src, [fx.CLOSED_RUN], out)
    dst = tmp_path / "dst.duckdb"
    assert exchange.import_runs(dst, out)["imported"] == [fx.CLOSED_RUN]
    assert exchange.import_runs(dst, out) == {"imported": [], "skipped": [fx.CLOSED_RUN], "runs": 1}
    assert exchange.import_runs(dst, out, replace=True)["imported"] == [fx.CLOSED_RUN]
    assert len(queries.get_requests(dst, fx.CLOSED_RUN)) == len(queries.get_requests(src, fx.CLOSED_RUN))


def test_an_older_export_without_newer_columns_imports_with_nulls(tmp_path):
    src = _source(tmp_path)
    out = tmp_path / "export"
    exchange.export_runs(src, [fx.HARDWARE_RUN], out)
    table = pq.read_table(out / "steps.parquet").drop(["client_stall_max_ms"])
    pq.write_table(table, out / "steps.parquet")
    dst = tmp_path / "dst.duckdb"
    assert exchange.import_runs(dst, out)["imported"] == [fx.HARDWARE_RUN]
    assert queries.get_steps(dst, fx.HARDWARE_RUN)[0]["client_stall_max_ms"] is None


def test_bad_input_is_one_clear_error(tmp_path):
    src = _source(tmp_path)
    with pytest.raises(StoreError, match="no run r-missing in"):
        exchange.export_runs(src, ["r-missing"], tmp_path / "x")
    assert not (tmp_path / "x").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(StoreError, match="exists and is not empty"):
        exchange.export_runs(src, None, full)
    with pytest.raises(StoreError, match="no export folder at"):
        exchange.import_runs(tmp_path / "d.duckdb", tmp_path / "nowhere")
    with pytest.raises(StoreError, match="is not a servelab export"):
        exchange.import_runs(tmp_path / "d.duckdb", full)
    out = tmp_path / "export"
    exchange.export_runs(src, [fx.OPEN_RUN], out)
    pq.write_table(pq.read_table(out / "runs.parquet").append_column(
        "colour", pq.read_table(out / "runs.parquet").column("label")), out / "runs.parquet")
    with pytest.raises(StoreError, match="column colour is unknown to this servelab"):
        exchange.import_runs(tmp_path / "d.duckdb", out)
    assert queries.list_runs(tmp_path / "d.duckdb") == []  # nothing half-imported
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "migrations": [*manifest["migrations"], "m999_x"]}))
    with pytest.raises(StoreError, match="written by a newer servelab"):
        exchange.import_runs(tmp_path / "d.duckdb", out)


def test_cli_export_then_import(cli, tmp_path):
    src = _source(tmp_path)
    res = cli("export", fx.OPEN_RUN, fx.HARDWARE_RUN, "--out", str(tmp_path / "ex"), "--store", str(src))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith(f"exported 2 run(s) to {tmp_path / 'ex'}:")
    res = cli("import", str(tmp_path / "ex"), "--store", str(tmp_path / "dst.duckdb"), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["imported"] == [fx.OPEN_RUN, fx.HARDWARE_RUN]
    res = cli("import", str(tmp_path / "ex"), "--store", str(tmp_path / "dst.duckdb"))
    assert "skipped 2 already there" in res.stdout and "--replace to overwrite" in res.stdout
    for args in (("export", "r-nope", "--out", str(tmp_path / "e2"), "--store", str(src)),
                 ("import", str(tmp_path / "nowhere"), "--store", str(tmp_path / "dst.duckdb")),
                 ("export", "--store", str(tmp_path / "missing.duckdb"))):
        res = cli(*args)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("servelab: error: "), res.stderr
