"""One read path: `store.load.load_run` then `analysis.report.run_report`, for the CLI's
`servelab summary` and the dashboard's run page; reading never writes."""

from __future__ import annotations

import json
import os
import stat

import store_fixtures as fx

from analysis.report import run_report
from servelab.results import run_summary
from store.load import load_run


def _store(tmp_path):
    path = fx.build_store(tmp_path / "s.duckdb")
    fx.add_hardware_run(path)
    return path


def test_summary_and_the_run_page_share_one_read_and_one_summary(tmp_path, cli):
    path = _store(tmp_path)
    data = load_run(path, fx.HARDWARE_RUN)
    assert len(data.requests) and len(data.samples) and data.run["run_id"] == fx.HARDWARE_RUN
    report = run_report(data)
    assert report == run_summary(str(path), fx.HARDWARE_RUN)
    res = cli("summary", fx.HARDWARE_RUN, "--store", str(path), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == json.loads(json.dumps(report))
    assert run_report(data, "e2e_p50<=1ms")["slo"] == ["e2e_p50<=1ms"]


def test_loading_a_run_never_writes_the_store(tmp_path):
    path = _store(tmp_path)
    os.chmod(path, stat.S_IRUSR)  # a write would fail; DuckDB also leaves no WAL on a read
    try:
        before, files = path.read_bytes(), sorted(path.parent.iterdir())
        for run_id in (fx.OPEN_RUN, fx.CLOSED_RUN, fx.HARDWARE_RUN):
            assert run_report(load_run(path, run_id))["run_id"] == run_id
        assert path.read_bytes() == before
        assert sorted(path.parent.iterdir()) == files  # no WAL, no recovery's leftovers
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
