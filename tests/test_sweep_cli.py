"""`servelab sweep`: bad specs are one line and write nothing; real sweeps, resume, kill -9.

The sweeps measure the built-in server's calibration mode with `calib_concurrency` (a
known-capacity server: K streams at once, the rest queue) and a calibration server at a
URL, so every point is a real run: real processes, real HTTP streaming, a real store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import duckdb
import pytest

pytestmark = pytest.mark.slow


def write(tmp_path, spec: dict, name: str = "spec.json"):
    path = tmp_path / name
    path.write_text(json.dumps(spec))
    return str(path)


def known(k: int = 2, **over) -> dict:
    spec = {
        "name": "known", "slo": "ttft_p99<=250ms", "duration_s": 3, "drain_s": 2, "repeats": 2,
        "search": {"kind": "capacity", "low": 1, "high": 40, "rel_tol": 0.2, "max_probes": 5},
        "workload": {"max_tokens": 16, "prompt_tokens": 8}, "profile": {"enabled": False},
        "setups": {f"k{k}": {"server": {"calibration": True, "calib_concurrency": k}}},
    }
    spec.update(over)
    return spec


@pytest.mark.parametrize("change, message", [
    ({"setups": {"a": {"server": {"batchin": "none"}}}}, "unknown key 'setups.a.server.batchin'"),
    ({"surprise": 1}, "unknown key 'surprise'"),
    ({"setups": {"a": {}}}, "setups.a: give one of server"),
    ({"search": {"kind": "capacity", "low": 8, "high": 2}}, "search low (8) must be below high (2)"),
    ({"workload": {"rate": 3}}, "'rate' is set by the sweep itself"),
    ({"workload": {"max_tokns": 3}}, "workload: unknown key 'max_tokns'"),
    ({"setups": {"u": {"target": "http://127.0.0.1:9"}}}, "setup u: cannot reach http://127.0.0.1:9"),
])
def test_a_bad_spec_is_one_line_and_writes_nothing(cli, tmp_path, change, message):
    spec = write(tmp_path, known(**change))
    r = cli("sweep", spec, "--store", "s.duckdb")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("servelab: error: "), r.stderr
    assert message in lines[0]
    if "cannot reach" not in message:
        assert str(tmp_path / "spec.json") in lines[0]  # the file is named
    assert not (tmp_path / "s.duckdb").exists()


def test_a_missing_spec_file_and_an_unknown_sweep_are_one_line(cli):
    for args in (["sweep", "nope.yaml"], ["sweep-summary", "s-nope"], ["sweep", "--resume", "s-nope"]):
        r = cli(*args, "--store", "s.duckdb")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_kill_9_keeps_finished_points_and_resume_measures_only_the_rest(cli, tmp_path):
    # a fine tolerance keeps the search going well past the two points the kill waits for
    spec = write(tmp_path, known(repeats=1, search={"kind": "capacity", "low": 1, "high": 40, "rel_tol": 0.01,
                                                    "max_probes": 6}))
    proc = cli.popen(["sweep", spec, "--store", "s.duckdb"], stdout=open(os.devnull, "w"),
                     stderr=open(os.devnull, "w"))
    db = tmp_path / "s.duckdb"
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and done < 2:
        time.sleep(1)
        try:
            with duckdb.connect(str(db), read_only=True) as con:
                done = con.execute("SELECT count(*) FROM sweep_points").fetchone()[0]
        except duckdb.Error:
            continue  # the sweep is writing: try again
    assert done >= 2, "the sweep did not store two points in time"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    cli.reap()
    listed = json.loads(cli("sweeps", "--store", "s.duckdb", "--json").stdout)
    assert listed[0]["status"] == "interrupted" and listed[0]["points"] >= 2
    sweep_id, kept = listed[0]["sweep_id"], listed[0]["points"]
    with duckdb.connect(str(db), read_only=True) as con:
        before = con.execute("SELECT probe, rate, run_id FROM sweep_points ORDER BY probe").fetchall()
    r = cli("sweep", "--resume", sweep_id, "--store", "s.duckdb", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # A capacity, or (a loaded machine can fail the SLO at the lowest load) the bound it lies beyond, said.
    cap, message = out["setups"][0]["capacity_req_s"], out["setups"][0]["capacity_message"]
    assert out["status"] == "completed" and (cap["value"] is not None or (cap["bound"] and message)), out
    with duckdb.connect(str(db), read_only=True) as con:
        after = con.execute("SELECT probe, rate, run_id FROM sweep_points ORDER BY probe").fetchall()
    assert after[:kept] == before[:kept]  # finished points were not measured again
    assert len(after) > kept or out["setups"][0]["points_used"] == kept


def test_grid_sweep_of_url_setups_and_fail_on_slo(cli, tmp_path):
    servers = []
    urls = []
    for ttft in (20, 400):  # one meets ttft_p99<=250ms at every load, one at none
        p = cli.popen(["serve", "--calibration", "--calib-ttft-ms", str(ttft), "--port", "0"],
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        servers.append(p)
        line = p.stdout.readline()
        while "listening on" not in line:
            line = p.stdout.readline()
            assert line, "server did not start"
        urls.append(line.strip().rsplit(" ", 1)[-1])
    spec = write(tmp_path, known(search={"kind": "grid", "rates": [2, 4]}, repeats=1,
                                 setups={"fast": {"target": urls[0], "price_per_hour": 1.5},
                                         "slow": {"target": urls[1]}}))
    r = cli("sweep", spec, "--store", "s.duckdb", "--json", "--fail-on-slo", timeout=300)
    assert r.returncode == 1, r.stderr  # "slow" met the SLO at no load
    out = json.loads(r.stdout)
    fast, slow = out["setups"]
    assert fast["kind"] == "url" and fast["target"] == urls[0] and fast["price_per_hour"] == 1.5
    assert [p["rate"] for p in fast["points"]] == [2, 4] and all(p["slo_met"] for p in fast["points"])
    assert fast["capacity_req_s"]["bound"] == "above" and fast["capacity_req_s"]["value"] is None
    assert "above" in fast["capacity_message"]
    assert slow["capacity_req_s"]["bound"] == "below" and not any(p["slo_met"] for p in slow["points"])
    # A sweep's points are gate sides: SWEEP_ID:SETUP@LOAD
    sid = out["sweep_id"]
    g = cli("gate", "--baseline", f"{sid}:fast@2", "--candidate", f"{sid}:slow@2", "--repeats", "1",
            "--metrics", "ttft_p50", "--store", "s.duckdb", "--json")
    verdict = json.loads(g.stdout.strip().splitlines()[-1])
    assert verdict["baseline"]["runs"] == [fast["points"][0]["run_id"]], verdict
    assert verdict["candidate"]["runs"] == [slow["points"][0]["run_id"]]
    assert g.returncode == verdict["exit_code"] == 3 and verdict["verdict"] == "inconclusive"  # 1 repeat
    for side, words in ((f"{sid}:nope", "has no setup 'nope'"), (f"{sid}:fast@3", "no point at load 3"),
                        (f"{sid}:fast", "ran different loads")):
        bad = cli("gate", "--baseline", side, "--candidate", f"{sid}:slow@2", "--store", "s.duckdb")
        assert bad.returncode == 2 and words in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    for p in servers:
        p.terminate()
        p.wait(10)


def test_ctrl_c_marks_the_sweep_interrupted_and_says_how_to_resume(cli, tmp_path):
    # a fine tolerance keeps the search going well past the point the Ctrl-C waits for
    spec = write(tmp_path, known(repeats=1, search={"kind": "capacity", "low": 1, "high": 40, "rel_tol": 0.01,
                                                    "max_probes": 6}))
    proc = cli.popen(["sweep", spec, "--store", "s.duckdb"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, text=True)
    # The sweep holds the store while it runs, so watch its spool instead: the second point's
    # first requests mean the first point is finished and stored.
    # (a point's spool goes once it is ingested: remember every run seen)
    deadline, seen = time.monotonic() + 120, set()
    while len(seen) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before its second point"
        time.sleep(0.1)
        seen |= {p.parts[-3] for p in tmp_path.glob("s.duckdb.spool/*/step-0/requests-*.jsonl")}
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "servelab sweep --resume s" in err
    listed = json.loads(cli("sweeps", "--store", "s.duckdb", "--json").stdout)
    assert listed[0]["status"] == "interrupted" and listed[0]["points"] >= 1


def test_capacity_sweep_of_two_known_capacity_servers_then_the_recommendation_flips(cli, tmp_path):
    """Two known-capacity servers with set prices: the cheap small one (K=2 slots of 200 ms,
    $1/h) and the dear big one (K=8, $1.5/h). The sweep stores runs, points and intervals;
    the recommendation takes the small one at low traffic and the big one once the small one
    would need many copies, with the replica counts the capacities' conservative ends imply."""
    import math

    spec = known(repeats=2, setups={
        "small": {"server": {"calibration": True, "calib_concurrency": 2}, "price_per_hour": 1.0},
        "big": {"server": {"calibration": True, "calib_concurrency": 8}, "price_per_hour": 1.5}})
    spec["search"] = {"kind": "capacity", "low": 1, "high": 80, "rel_tol": 0.15, "max_probes": 6}
    r = cli("sweep", write(tmp_path, spec), "--store", "s.duckdb", "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "completed" and out["slo"] == "ttft_p99<=250ms"
    small, big = out["setups"]
    cap = small["capacity_req_s"]
    # K=2 slots of 200 ms: at most 10 req/s; a 3 s window's truth is about 6 (bench/capacity.py)
    assert 3.5 < cap["value"] < 9.0, cap
    assert cap["ci_low"] < cap["value"] < cap["ci_high"] and cap["method"] == "t" and len(cap["repeats"]) == 2
    assert small["capacity_output_tok_s"]["value"] == pytest.approx(cap["value"] * 16, rel=0.02)
    pts = small["points"]
    assert small["points_used"] == len(pts) >= 4
    assert min(p["rate"] for p in pts) <= cap["value"] <= max(p["rate"] for p in pts)
    assert all(p["offered_rate"] == pytest.approx(p["rate"], rel=0.25) for p in pts)
    # every point is an ordinary run, tagged with the sweep and the setup
    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
        tagged = con.execute("SELECT count(*) FROM runs WHERE sweep_id = ? AND setup = 'small'",
                             [out["sweep_id"]]).fetchone()
        assert tagged == (len(pts),)
        assert con.execute("SELECT status FROM sweeps").fetchone() == ("completed",)
    again = json.loads(cli("sweep-summary", out["sweep_id"], "--store", "s.duckdb", "--json").stdout)
    assert again["setups"][0]["capacity_req_s"] == cap
    listed = json.loads(cli("sweeps", "--store", "s.duckdb", "--json").stdout)
    assert [(s["sweep_id"], s["points"]) for s in listed] == [(out["sweep_id"], len(pts) + big["points_used"])]
    shown = cli("sweep-summary", out["sweep_id"], "--store", "s.duckdb", "--points")
    assert shown.returncode == 0, shown.stderr
    assert "capacity" in shown.stdout and f"{cap['value']:,.2f}" in shown.stdout, shown.stdout

    def conservative(c):  # analysis/recommend.py: ci_low, or the lowest repeat when it reaches 0
        return c["ci_low"] if c["ci_low"] and c["ci_low"] > 0 else min(c["repeats"])

    cons = {s["name"]: conservative(s["capacity_req_s"]) for s in out["setups"]}
    # 2 repeats: t(0.975, 1) = 12.7, so the conservative ends lie well below the values
    assert cons["big"] > 1.75 * cons["small"], cons  # so that 12x the small one's traffic flips it

    def plan(traffic):
        res = cli("recommend", out["sweep_id"], "--traffic", f"{traffic:.6f}", "--headroom", "0",
                  "--store", "s.duckdb", "--json")
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout.strip().splitlines()[-1])

    low = plan(0.5 * cons["small"])
    assert (low["setup"], low["replicas"]) == ("small", 1)
    assert low["usd_per_hour"] == pytest.approx(1.0) and low["prices_as_of"]
    traffic = math.floor(12 * cons["small"] * 1e6) / 1e6  # printed with 6 decimals below: never rounded up past 12x
    high = plan(traffic)
    copies = {name: math.ceil(traffic / c - 1e-9) for name, c in cons.items()}
    assert copies["small"] == 12 and copies["big"] * 1.5 < 12 * 1.0
    assert (high["setup"], high["replicas"]) == ("big", copies["big"])
    assert high["usd_per_hour"] == pytest.approx(1.5 * copies["big"])
    assert high["runner_up"]["setup"] == "small" and high["runner_up"]["replicas"] == 12
