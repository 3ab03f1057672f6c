"""`servelab plan` as a user runs it: a subprocess over a store holding a sweep
(tests/decision_fixtures.py: rows written as the sweep runner writes them), real traffic
files (the Azure trace in data/, a CSV written here), real output files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import decision_fixtures as dfx
from servelab.datafiles import data_path
from tests.sweep_fixtures import setup, sweep
from tests.test_cli import assert_one_error_line, last_json

AZURE = data_path("traces", "AzureLLMInferenceTrace_conv.csv")
KEYS = {"setup", "peak_req_s", "replicas_peak", "replicas_by_hour", "utilisation_peak", "usd_per_month",
        "prices_as_of", "validation"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("plan") / "sweep.duckdb"
    dfx.add_sweep(path)
    return str(path)


def _plan(cli, store, *args):
    res = cli("plan", dfx.SWEEP_ID, "--store", store, "--out", "out", "--json", *args)
    assert res.returncode == 0, res.stderr
    return last_json(res.stdout)


def test_constant_rate_plan_is_the_recommendation_at_that_rate(cli, store):
    p = _plan(cli, store, "--traffic", "30", "--headroom", "0.2")
    assert KEYS <= set(p)
    rec = last_json(cli("recommend", dfx.SWEEP_ID, "--store", store, "--traffic", "30", "--headroom", "0.2",
                        "--json").stdout)
    assert (p["setup"], p["replicas_peak"]) == (rec["setup"], rec["replicas"])
    assert p["replicas_by_hour"] == [p["replicas_peak"]]
    assert p["usd_per_month"]["fixed"] == pytest.approx(rec["usd_per_month"])
    assert p["prices_as_of"] and p["validation"] is None
    folder = Path(cli.cwd) / "out"
    assert json.loads((folder / "plan.json").read_text())["replicas_peak"] == p["replicas_peak"]
    assert f"{p['replicas_peak']} replica(s) at the peak" in (folder / "plan.md").read_text()
    page = (folder / "plan.html").read_text()
    assert page.count("Plotly.newPlot") == 3 and "<script src" not in page and "<link" not in page


def test_hourly_csv_plan_with_growth(cli, store, tmp_path):
    rates = [2, 1, 1, 1, 2, 4, 8, 14, 20, 22, 24, 23, 22, 21, 20, 19, 18, 16, 14, 12, 9, 6, 4, 3]
    (tmp_path / "day.csv").write_text("hour,req_s\n" + "".join(f"{h},{r}\n" for h, r in enumerate(rates)))
    p = _plan(cli, store, "--traffic", "day.csv", "--setup", "none", "--growth", "20%/quarter")
    assert p["setup"] == "none" and p["peak_req_s"] == 24 and len(p["replicas_by_hour"]) == 24
    assert max(p["replicas_by_hour"]) == p["replicas_peak"] > min(p["replicas_by_hour"])
    usd = p["usd_per_month"]
    assert usd["autoscaled"] < usd["fixed"]  # a daily cycle: scaling down at night saves money
    assert p["growth"]["months_to_capacity"] > p["growth"]["months_to_headroom_used"] >= 0
    row = next(s for s in p["setups"] if s["setup"] == "continuous")
    assert row["replicas_peak"] < p["replicas_peak"]  # the comparison covers every setup


def test_azure_trace_plan_per_minute_with_its_length_mix(cli, store):
    p = _plan(cli, store, "--traffic", str(AZURE), "--traffic-scale", "2")
    df = pd.read_csv(AZURE)
    t = pd.to_datetime(df["TIMESTAMP"], format="ISO8601")
    per_minute = ((t - t.min()).dt.total_seconds() / 2 // 60).value_counts()  # x2: half the seconds
    assert p["traffic"]["bucket_s"] == 60
    assert p["peak_req_s"] == pytest.approx(per_minute.max() / 60)
    mix = p["length_mix"]
    assert mix["differs"] and mix["prompt"]["measured"] == 128
    assert mix["prompt"]["traffic"] > 5 * 128  # capped at max_context 2048, still far longer
    assert any(n.startswith("prompt tokens per request") for n in mix["notes"])


@pytest.mark.parametrize("args, says", [
    (["s-unknown", "--traffic", "5"], "s-unknown"),
    ([dfx.SWEEP_ID, "--traffic", "fast"], "not a rate"),
    ([dfx.SWEEP_ID, "--traffic", "empty.csv"], "no rates"),
    ([dfx.SWEEP_ID, "--traffic", "bad.csv"], "not a rate"),
    ([dfx.SWEEP_ID, "--traffic", "5", "--growth", "lots"], "--growth"),
])
def test_bad_input_is_one_line_exit_2(cli, store, tmp_path, args, says):
    (tmp_path / "empty.csv").write_text("hour,req_s\n")
    (tmp_path / "bad.csv").write_text("hour,req_s\n0,3\n1,lots\n")
    res = cli("plan", *args, "--store", store, "--out", "out")
    assert res.returncode == 2
    assert says in assert_one_error_line(res)


def test_validate_a_url_setup_says_why_not(cli, tmp_path):
    url = {**setup("remote", [4.0, 5.0], (4.0, 5.0), price=1.0), "kind": "url", "target": "http://127.0.0.1:9"}
    (tmp_path / "sweep.json").write_text(json.dumps(sweep(url)))
    res = cli("plan", "--from-json", "sweep.json", "--traffic", "6", "--validate", "--out", "out")
    assert res.returncode == 0, res.stderr
    assert "validation: setup remote is a URL target" in res.stdout


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("haproxy") and not Path("/usr/sbin/haproxy").exists(),
                    reason="haproxy is not installed: apt-get install haproxy")
def test_validate_replays_the_peak_at_the_planned_count_and_one_fewer(cli, tmp_path):
    """A real replay: the tiny built-in server behind HAProxy at 2 replicas, then at 1."""
    tiny = {**setup("tiny", [3.0, 3.2], (2.9, 3.3), price=0.1), "server": {"model": "tiny", "batching": "none"}}
    result = {**sweep(tiny, slo="ttft_p99<=2000ms"), "workload": {"max_tokens": 8, "prompt_tokens": 32}}
    (tmp_path / "sweep.json").write_text(json.dumps(result))
    res = cli("plan", "--from-json", "sweep.json", "--traffic", "5", "--validate", "--validate-duration", "4",
              "--store", "v.duckdb", "--out", "out", "--json", timeout=240)
    assert res.returncode == 0, res.stderr
    v = last_json(res.stdout)["validation"]
    assert v["status"] == "run" and v["replayed"] == {"arrivals": "poisson", "offered_req_s": 5.0}
    runs = [v["at_plan"], v["one_fewer"]]
    assert [r["replicas"] for r in runs] == [2, 1] and runs[0]["run_id"] != runs[1]["run_id"]
    assert all(0 <= r["slo_attainment"] <= 1 and r["req_s"] > 0 for r in runs)
    assert v["verdict"].startswith(("holds", "fails"))
    assert v["verdict"] in (Path(cli.cwd) / "out" / "plan.md").read_text()
    shown = json.loads(cli("summary", runs[0]["run_id"], "--store", "v.duckdb", "--json").stdout)
    assert shown["slo_attainment"] == pytest.approx(runs[0]["slo_attainment"])
