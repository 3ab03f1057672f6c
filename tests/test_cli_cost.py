"""`servelab recommend`, `frontier` and `fidelity` as a user runs them (subprocess, real files).

The sweep results are dicts in the sweep engine's output shape (tests/sweep_fixtures.py),
saved as the `--from-json` file the commands accept.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from servelab.config import ServerConfig
from servelab.targets import builtin_server
from tests.sweep_fixtures import point, setup, sweep
from tests.test_cli import assert_one_error_line, last_json

COMMANDS = ["recommend", "frontier", "fidelity"]
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def grid(name, caps, rates_lat, repeats=3, **kw):
    pts = [point(r, rate, met, lat) for r in range(repeats) for rate, (met, lat) in rates_lat.items()]
    return setup(name, caps, (min(caps), max(caps)), points=pts, **kw)


@pytest.fixture
def two_servers(tmp_path):
    """A cheap small-capacity setup (ci_low 2 req/s) and a dearer one with 4x the capacity (ci_low 8)."""
    small = grid("small", [2.0, 2.2, 2.4], {1.0: (True, 200.0), 2.0: (True, 400.0), 4.0: (False, 900.0)},
                 hardware="local-cpu")
    big = grid("big", [8.0, 8.5, 9.0], {1.0: (True, 100.0), 2.0: (True, 110.0), 8.0: (True, 300.0)},
               hardware="aws-g5.xlarge")
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(sweep(small, big)))
    return path


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_has_an_example(cli, cmd):
    res = cli(cmd, "--help")
    assert res.returncode == 0, res.stderr
    assert re.search(r"Example:\s*servelab " + cmd, res.stdout), res.stdout


@pytest.mark.parametrize("traffic", [1.0, 3.0, 9.0])
def test_recommend_flips_with_traffic(cli, two_servers, traffic):
    # small: $0.30/h set by flag; big: the catalog's on-demand price of aws-g5.xlarge
    from servelab.prices import load_catalog

    big_usd = load_catalog()["skus"]["aws-g5.xlarge"]["on_demand"]["usd_per_hour"]
    res = cli("recommend", "--from-json", str(two_servers), "--traffic", str(traffic), "--headroom", "0",
              "--price-per-hour", "local-cpu=0.30", "--json")
    assert res.returncode == 0, res.stderr
    rec = last_json(res.stdout)
    n = {"small": math.ceil(traffic / 2.0), "big": math.ceil(traffic / 8.0)}
    cost = {"small": n["small"] * 0.30, "big": n["big"] * big_usd}
    want = min(cost, key=cost.get)
    assert (rec["setup"], rec["replicas"]) == (want, n[want])
    assert rec["usd_per_hour"] == pytest.approx(cost[want])
    assert rec["usd_per_month"] == pytest.approx(cost[want] * 730)
    assert set(rec["capacity_req_s"]) == {"value", "ci_low", "ci_high"}
    assert DATE.fullmatch(rec["prices_as_of"]) and rec["prices_source"]
    assert rec["runner_up"]["prices_as_of"] and rec["runner_up"]["prices_source"]
    assert [r["setup"] for r in rec["rejected"]] == [s for s in ("small", "big") if s != want]


def test_recommend_table_names_date_and_source(cli, two_servers):
    res = cli("recommend", "--from-json", str(two_servers), "--traffic", "9", "--price-per-hour", "local-cpu=0.30")
    assert res.returncode == 0, res.stderr
    assert "big x 2" in res.stdout                 # 9.9 req/s planned over ci_low 8
    assert "/month" in res.stdout and "why the others lost" in res.stdout
    for line in res.stdout.splitlines():
        if "$" in line and "/hour" in line:
            assert "prices as of" in line and "source:" in line, line


def test_recommend_min_fidelity_and_slo(cli, two_servers, tmp_path):
    fid = tmp_path / "fid.json"
    fid.write_text(json.dumps({"baseline": "x", "setups": {"big": {"exact_match_rate": 0.5, "token_agreement": 0.9}}}))
    args = ["recommend", "--from-json", str(two_servers), "--traffic", "16", "--headroom", "0",
            "--price-per-hour", "local-cpu=0.30", "--fidelity", str(fid), "--json"]
    rec = last_json(cli(*args).stdout)
    assert (rec["setup"], rec["replicas"], rec["changes_answers"]) == ("big", 2, True)   # 2 x 1.006 < 8 x 0.30
    rec = last_json(cli(*args, "--min-fidelity", "0.9").stdout)
    assert (rec["setup"], rec["replicas"]) == ("small", 8)
    assert "changes answers" in rec["rejected"][0]["reason"]
    # a tighter SLO than the sweep's: small met 250 ms only at 1 req/s, big up to 2 req/s
    rec = last_json(cli(*args[:-1], "--slo", "ttft_p99<=250ms", "--json").stdout)
    assert rec["slo"] == "ttft_p99<=250ms"
    assert (rec["setup"], rec["replicas"]) == ("small", 16)                # 16 x 0.30 < 8 x 1.006
    assert rec["runner_up"]["replicas"] == 8


def test_frontier_prints_frontier_attribution_and_prices(cli, two_servers):
    res = cli("frontier", "--from-json", str(two_servers), "--baseline", "small", "--price-per-hour", "local-cpu=0.30")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "latency/cost frontier" in out and "what each setup bought against small" in out
    assert "cost at capacity within the SLO" in out
    assert re.search(r"\d\.\d\dx \[\d\.\d\d, \d\.\d\d\]", out), out        # capacity ratio with its interval
    assert "small: $0.3/h user-set, prices as of" in out
    assert re.search(r"big: \$[\d.]+/h on-demand, prices as of \d{4}-\d{2}-\d{2}, source: https://", out), out
    j = last_json(cli("frontier", "--from-json", str(two_servers), "--price-per-hour", "local-cpu=0.3", "--json").stdout)
    assert len(j["frontier"]["points"]) == 6 and any(p["pareto"] is False for p in j["frontier"]["points"])
    assert j["attribution"]["baseline"] == "small"
    costs = {c["setup"]: c for c in j["costs"]}
    assert costs["small"]["usd_per_hour"] == pytest.approx(0.3) and costs["small"]["prices_as_of"]
    assert costs["big"]["prices_source"].startswith("https://")


@pytest.mark.parametrize("args, needle", [
    (["recommend", "--traffic", "1"], "--from-json"),
    (["recommend", "s-1", "--traffic", "1"], "no store at servelab.duckdb"),
    (["recommend", "--from-json", "missing.json", "--traffic", "1"], "cannot read"),
    (["recommend", "--from-json", "SWEEP", "--traffic", "1", "--pricing", "cheap"], "--pricing"),
    (["recommend", "--from-json", "SWEEP", "--traffic", "1", "--price-per-hour", "x"], "--price-per-hour"),
    (["recommend", "--from-json", "SWEEP", "--traffic", "0", "--price-per-hour", "local-cpu=1"], "traffic"),
    (["recommend", "--from-json", "SWEEP", "--traffic", "1", "--slo", "ttft_p42<=1ms"], "p42"),
    (["frontier", "--from-json", "SWEEP", "--latency", "ttft_p42"], "bad latency"),
    (["frontier", "--from-json", "SWEEP", "--baseline", "nope"], "no setup 'nope'"),
])
def test_user_mistakes_are_one_line(cli, two_servers, args, needle):
    args = [str(two_servers) if a == "SWEEP" else a for a in args]
    line = assert_one_error_line(cli(*args))
    assert needle in line, line


def test_no_setup_can_serve_exits_non_zero(cli, tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(sweep(setup("never", None, bound="below"))))
    res = cli("recommend", "--from-json", str(path), "--traffic", "1", "--json")
    assert res.returncode == 1 and last_json(res.stdout)["rejected"][0]["reason"].startswith("misses the SLO")


@pytest.mark.slow
def test_fidelity_command_against_real_servers(cli, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Question {i}: what is {i} plus {i}?"}) + "\n"
                               for i in range(6)))
    cfg = ServerConfig(model="tiny")
    with builtin_server(cfg) as a, builtin_server(cfg) as b, builtin_server(cfg.model_copy(update={"precision": "int8"})) as c:
        res = cli("fidelity", "--baseline", a.url, "--candidate", f"same={b.url}", "--candidate", f"int8={c.url}",
                  "--prompts", str(prompts), "--max-tokens", "10", "--json")
    assert res.returncode == 0, res.stderr
    out = last_json(res.stdout)
    assert out["prompts"] == 6 and out["baseline"] == a.url
    same, int8 = out["setups"]["same"], out["setups"]["int8"]
    assert same["exact_match_rate"] == 1.0 and same["changed_prompts"] == []
    assert len(int8["changed_prompts"]) == round(6 * (1 - int8["exact_match_rate"]))
