"""Read-only queries: run listing, one run, steps, requests frame."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from store import (
    StoreError, add_step, create_run, finish_run, get_requests, get_run, get_steps, ingest_step,
    list_runs, new_run_id, spool_dir,
)
from store.load import load_run

CONFIG = {"target": "builtin", "load": {"mode": "open", "rate": 4.0, "users": 1}, "slo": []}


def make_run(path, run_id, n_requests):
    create_run(path, run_id, CONFIG, "builtin", f"label-{run_id}", {"cpus": 2}, "0.1.0")
    add_step(path, run_id, 0, "open", None, 4.0, 10.0, 1.0)
    lines = [json.dumps({"req_id": f"{run_id}-{i}", "t_send_ns": 100 - i, "t_sched_ns": 90 - i, "status": "ok",
                         "chunk_ns": [200, 210], "output_tokens_client": 2}) for i in range(n_requests)]
    (spool_dir(path, run_id, 0) / "requests-w0.jsonl").write_text("\n".join(lines) + "\n")
    ingest_step(path, run_id, 0)


def test_new_run_ids_are_sortable_and_safe():
    ids = [new_run_id() for _ in range(20)]
    assert all(re.fullmatch(r"r\d{8}-\d{6}-[0-9a-f]{4}", i) for i in ids)
    assert len(set(ids)) > 1


def test_list_runs_newest_first_with_counts(tmp_path):
    path = tmp_path / "s.duckdb"
    make_run(path, "r20260101-000000-aaaa", 3)
    make_run(path, "r20260101-000001-bbbb", 1)
    finish_run(path, "r20260101-000001-bbbb", "completed")
    runs = list_runs(path)
    assert [r["run_id"] for r in runs] == ["r20260101-000001-bbbb", "r20260101-000000-aaaa"]
    newest = runs[0]
    assert {k: newest[k] for k in ("status", "target", "label", "requests", "steps", "mode", "users", "rate")} == {
        "status": "completed", "target": "builtin", "label": "label-r20260101-000001-bbbb",
        "requests": 1, "steps": 1, "mode": "open", "users": 1, "rate": 4.0}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", newest["created_at"])
    assert runs[1]["ended_at"] is None and runs[1]["requests"] == 3


def test_get_run_parses_config_and_rejects_unknown_ids(tmp_path):
    path = tmp_path / "s.duckdb"
    make_run(path, "r1", 1)
    run = get_run(path, "r1")
    assert run["config"] == CONFIG and run["host"] == {"cpus": 2} and run["version"] == "0.1.0"
    with pytest.raises(StoreError, match=r"^no run r2 in .*s\.duckdb$"):
        get_run(path, "r2")
    with pytest.raises(StoreError, match="no run r2"):
        get_requests(path, "r2")
    with pytest.raises(StoreError, match=r"^no run r2 in .*s\.duckdb$"):  # one open shared by every read
        load_run(path, "r2")
    assert load_run(path, "r1").run == run


def test_queries_on_a_missing_store(tmp_path):
    with pytest.raises(StoreError, match="no store at"):
        list_runs(tmp_path / "none.duckdb")


def test_get_requests_frame_types_and_order(tmp_path):
    path = tmp_path / "s.duckdb"
    make_run(path, "r1", 3)
    df = get_requests(path, "r1")
    assert list(df["req_id"]) == ["r1-2", "r1-1", "r1-0"]  # by send time
    assert str(df["t_send_ns"].dtype) == "Int64" and str(df["t_first_ns"].dtype) == "Int64"
    assert df["t_first_ns"].isna().all()
    assert df["chunk_ns"].iloc[0] == [200, 210] and type(df["chunk_ns"].iloc[0][0]) is int
    assert df["server"].iloc[0] is None
    assert get_steps(path, "r1")[0]["rate"] == 4.0
    assert isinstance(get_requests(path, "r1", step=5), pd.DataFrame) and get_requests(path, "r1", step=5).empty
