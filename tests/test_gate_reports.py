"""The gate's reports from a verdict on plain numbers: JUnit XML, Markdown, JSON."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np

from analysis.gate import GateOptions, judge
from analysis.gate_metrics import parse_metrics
from servelab.config import LoadConfig
from servelab.gate import gate_result
from servelab.gate_json import render_json
from servelab.gate_junit import render_junit
from servelab.gate_markdown import LIMIT_BYTES, render_markdown

SPECS = parse_metrics(None)


def result(n: int = 6, ttft_shift: float = 1.2, untrusted=(), runs: int = 6) -> dict:
    rng = np.random.default_rng(1)
    base = {s.name: list(100 * (1 + rng.normal(0, 0.01, n))) for s in SPECS}
    base["error_rate"] = [0.0] * n
    cand = {k: list(np.array(v) * (1 + rng.normal(0, 0.001, n))) for k, v in base.items()}
    cand["ttft_p50"] = [x * ttft_shift for x in base["ttft_p50"]]
    verdict = judge(SPECS, base, cand, GateOptions(min_repeats=min(n, 6)), list(untrusted))
    sides = {name: {"spec": f"{name}<&>", "measured_now": True, "runs": [f"r{name[0]}{i:06d}" for i in range(runs)]}
             for name in ("baseline", "candidate")}
    return gate_result(verdict, 6, LoadConfig(users=4, duration_s=2).model_dump(mode="json"), sides)


def test_junit_is_well_formed_one_case_per_metric_and_failures_carry_numbers():
    res = result()
    root = ET.fromstring(render_junit(res))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [s.name for s in SPECS]
    failures = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["ttft_p50"]
    text = failures[0].find("failure").text
    assert "baseline median" in text and "+20.0%" in text and "p=" in text
    assert suite.get("failures") == "1" and suite.get("tests") == str(len(SPECS))


def test_junit_marks_inconclusive_metrics_as_errors():
    res = result(untrusted=["candidate run r1 failed its self-check: client CPU 97% > 90%"])
    suite = ET.fromstring(render_junit(res)).find("testsuite")
    assert suite.get("errors") == str(len(SPECS)) and suite.get("failures") == "0"
    assert "self-check" in suite.find("system-err").text


def test_markdown_puts_the_table_first():
    md = render_markdown(result())
    lines = md.splitlines()
    assert lines[0] == "## servelab gate: ❌ regressed"
    assert lines[2].startswith("| metric | verdict |") and lines[3].startswith("|---|")
    assert lines[4].startswith("| ttft_p50 | ❌ regressed |")
    assert "&" in md and "<details>" in md


def test_markdown_stays_under_one_mib_with_huge_inputs():
    res = result(runs=30000)
    for m in res["metrics"]:  # as if 40000 repeats had been measured
        m["baseline"] = m["candidate"] = [123.456] * 40000
    md = render_markdown(res)
    assert len(md.encode()) < LIMIT_BYTES
    assert md.splitlines()[2].startswith("| metric |")


def test_json_round_trips_even_an_infinite_change():
    res = result()
    err = next(m for m in res["metrics"] if m["name"] == "error_rate")
    err["rel_change"] = float("inf")
    back = json.loads(render_json(res))
    assert back["verdict"] == "regressed" and back["exit_code"] == 1
    assert next(m for m in back["metrics"] if m["name"] == "error_rate")["rel_change"] == "+inf"
