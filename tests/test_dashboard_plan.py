"""The Capacity plan page under AppTest, over a store holding a sweep (tests/decision_fixtures.py):
its figures against `servelab plan --json` on the same sweep and inputs, for a constant rate
and for the Azure trace in data/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

from apptest_kit import no_errors, store  # noqa: F401 (a fixture)
import decision_fixtures as dfx
from servelab.datafiles import data_path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "dashboard" / "app_pages" / "plan.py"
AZURE = str(data_path("traces", "AzureLLMInferenceTrace_conv.csv"))


def cli_plan(store: Path, tmp_path: Path, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "servelab.cli", "plan", dfx.SWEEP_ID, "--store", str(store),
                          "--out", str(tmp_path / "cli"), "--json", *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_constant_traffic_matches_the_cli(store, tmp_path):
    at = AppTest.from_file(str(PAGE), default_timeout=90).run()
    no_errors(at)
    at.number_input[0].set_value(40.0)
    at.number_input[1].set_value(0.25)  # headroom
    at.run()
    no_errors(at)
    want = cli_plan(store, tmp_path, "--traffic", "40", "--headroom", "0.25", "--growth", "20%/quarter")
    got = metrics(at)
    assert got["setup"] == want["setup"]
    assert int(got["replicas at the peak"]) == want["replicas_peak"]
    assert got["fixed fleet, per month"].replace(",", "") in f"${want['usd_per_month']['fixed']:.2f}"
    assert len(at.get("plotly_chart")) == 3
    assert "servelab plan " + dfx.SWEEP_ID in at.caption[-1].value


def test_trace_traffic_matches_the_cli_and_warns_of_the_length_mix(store, tmp_path):
    at = AppTest.from_file(str(PAGE), default_timeout=90).run()
    at.radio[0].set_value("trace").run()
    no_errors(at)
    assert at.selectbox(key="plan_trace").value == AZURE
    at.selectbox(key="plan_setup").set_value("none").run()
    no_errors(at)
    want = cli_plan(store, tmp_path, "--traffic", AZURE, "--setup", "none", "--growth", "20%/quarter")
    assert int(metrics(at)["replicas at the peak"]) == want["replicas_peak"]
    assert any("prompt tokens per request" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 3
