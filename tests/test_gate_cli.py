"""`servelab gate` and `servelab run --fail-on-slo` as a user runs them: real calibration
servers on 127.0.0.1 (exact, known timings, no model), a real store, real exit codes.

The planted regression: the baseline server answers its first token after 50 ms, the
candidate after 60 ms (+20% TTFT), both then a chunk every 10 ms.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

import store_fixtures as fx
from servelab.config import ServerConfig
from servelab.targets import builtin_server
from test_cli import assert_one_error_line, last_json

LOAD = ["--users", "4", "--duration", "1", "--max-tokens", "8", "--prompt-tokens", "16", "--repeats", "4"]


@pytest.fixture(scope="module")
def servers():
    """(baseline URL, candidate URL): calibration servers with TTFT 50 ms and 60 ms."""
    with builtin_server(ServerConfig(calibration=True, calib_ttft_ms=50.0, calib_itl_ms=10.0)) as a, \
            builtin_server(ServerConfig(calibration=True, calib_ttft_ms=60.0, calib_itl_ms=10.0)) as b:
        yield a.url, b.url


@pytest.fixture
def fixture_store(tmp_path):
    return str(fx.build_store(tmp_path / "fx.duckdb"))


# --- measured now -------------------------------------------------------------------------

@pytest.mark.slow
def test_planted_regression_is_caught_and_stored_runs_are_reused(cli, tmp_path, servers):
    store = str(tmp_path / "g.duckdb")
    res = cli("gate", "--baseline", servers[0], "--candidate", servers[1], *LOAD, "--label", "ab",
              "--store", store, "--junit", "g.xml", "--markdown", "g.md", "--json", timeout=300)
    assert res.returncode == 1, res.stderr
    out = last_json(res.stdout)
    assert out["verdict"] == "regressed" and out["exit_code"] == 1
    ttft = {m["name"]: m for m in out["metrics"]}["ttft_p50"]
    assert ttft["verdict"] == "regressed" and 0.15 < ttft["rel_change"] < 0.25, ttft
    assert len(out["baseline"]["runs"]) == len(out["candidate"]["runs"]) == 4
    assert res.stderr.count("gate: repeat") == 8 and "Traceback" not in res.stderr

    suite = ET.parse(tmp_path / "g.xml").getroot().find("testsuite")
    assert len(suite.findall("testcase")) == 7
    failed = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert "ttft_p50" in failed
    md = (tmp_path / "g.md").read_text()
    assert md.startswith("## servelab gate:") and "| ttft_p50 | ❌ regressed |" in md

    # The candidate's runs, moved as a Parquet export, against the baseline's by label:
    # nothing is measured again, and going back to 50 ms is an improvement, not a regression.
    ids = out["candidate"]["runs"]
    assert cli("export", *ids, "--out", "cand", "--store", store).returncode == 0
    res = cli("gate", "--baseline", "cand", "--candidate", "ab:baseline", "--repeats", "4",
              "--metrics", "ttft_p50,error_rate", "--store", store, "--json")
    assert res.returncode == 0, res.stderr
    back = last_json(res.stdout)
    assert "gate: repeat" not in res.stderr
    assert [m["verdict"] for m in back["metrics"]] == ["improved", "no change"]
    assert back["candidate"]["runs"] == out["baseline"]["runs"]


@pytest.mark.slow
def test_a_a_gate_does_not_say_regressed(cli, tmp_path, servers):
    res = cli("gate", "--baseline", servers[0], "--candidate", servers[0], *LOAD,
              "--store", str(tmp_path / "g.duckdb"), "--json", timeout=300)
    out = last_json(res.stdout)
    assert res.returncode in (0, 3), res.stderr
    assert out["verdict"] != "regressed", out
    assert res.returncode == out["exit_code"]


# --- bad input: one line, exit 2 ---------------------------------------------------------------

def test_unknown_run_id_is_one_line(cli, fixture_store):
    res = cli("gate", "--baseline", "r20990101-000000-ffff", "--candidate", fx.CLOSED_RUN, "--store", fixture_store)
    assert res.returncode == 2
    assert "no run, label or sweep 'r20990101-000000-ffff'" in assert_one_error_line(res)


def test_sides_with_different_loads_is_one_line(cli, fixture_store):
    res = cli("gate", "--baseline", fx.OPEN_RUN, "--candidate", fx.CLOSED_RUN, "--store", fixture_store)
    assert res.returncode == 2
    assert "different loads" in assert_one_error_line(res)


def test_load_flags_that_differ_from_the_stored_side_are_one_line(cli, fixture_store):
    res = cli("gate", "--baseline", fx.CLOSED_RUN, "--candidate", "http://127.0.0.1:9", "--users", "9",
              "--store", fixture_store)
    assert res.returncode == 2
    assert "differ from the baseline's stored load" in assert_one_error_line(res)


def test_an_empty_export_folder_is_one_line(cli, tmp_path, fixture_store):
    (tmp_path / "empty").mkdir()
    res = cli("gate", "--baseline", "empty", "--candidate", fx.CLOSED_RUN, "--store", fixture_store)
    assert res.returncode == 2
    assert "not a servelab export" in assert_one_error_line(res)


@pytest.mark.parametrize("args, words", [
    (["--threshold", "ttft_p99=five"], "bad --threshold"),
    (["--metrics", "ttft_p42"], "unknown gate metric"),
    (["--store", "missing.duckdb"], "no store at"),
])
def test_bad_flags_are_one_line(cli, args, words):
    res = cli("gate", "--baseline", "r20990101-000000-ffff", "--candidate", "builtin", *args)
    assert res.returncode == 2
    assert words in assert_one_error_line(res)


def test_usage_errors_exit_2(cli):
    res = cli("gate", "--baseline", "builtin")  # no --candidate
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--candidate" in res.stderr


# --- run --fail-on-slo -----------------------------------------------------------------------------

CALIB_RUN = ["run", "--target", "builtin", "--calibration", "--users", "2", "--duration", "1",
             "--max-tokens", "4", "--prompt-tokens", "8"]


@pytest.mark.slow
@pytest.mark.parametrize("slo, code", [("ttft_p50<=5ms", 1), ("ttft_p99<=5000ms", 0)])
def test_run_fail_on_slo(cli, tmp_path, slo, code):
    res = cli(*CALIB_RUN, "--slo", slo, "--fail-on-slo", "--store", str(tmp_path / "s.duckdb"), "--json")
    assert res.returncode == code, res.stderr
    assert json.loads(res.stdout.splitlines()[-1])["slo_met"] is (code == 0)


def test_fail_on_slo_without_an_slo_is_one_line(cli, tmp_path):
    res = cli(*CALIB_RUN, "--fail-on-slo", "--store", str(tmp_path / "s.duckdb"))
    assert res.returncode == 2
    assert "--fail-on-slo needs an SLO" in assert_one_error_line(res)
