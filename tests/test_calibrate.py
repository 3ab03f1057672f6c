"""`servelab calibrate` end to end (slow), and the pure matching and verdict (fast)."""

from __future__ import annotations

import json

import duckdb
import pytest

from analysis.calibration import accurate, errors_ms, match, max_accurate_rate, parse_log


def test_match_pairs_each_send_with_the_next_receive_and_computes_errors():
    server = parse_log([json.dumps({"t_recv_ns": 1_100, "chunk_ns": [5_000, 6_000]}),
                        json.dumps({"t_recv_ns": 100, "chunk_ns": [2_000, 3_000]}), '{"t_recv_ns": 9'])
    client = [{"t_send_ns": 1_000, "t_first_ns": 5_500, "chunk_ns": [5_500, 6_600]},
              {"t_send_ns": 0, "t_first_ns": 2_000, "chunk_ns": [2_000, 3_000]}]
    pairs = match(client, server)
    assert [(c["t_send_ns"], s["t_recv_ns"]) for c, s in pairs] == [(0, 100), (1_000, 1_100)]
    err = errors_ms(pairs)
    assert err["matched"] == 2
    assert err["ttft_err_p50_ms"] == pytest.approx(0.00025)  # (0 + 500 ns) / 2
    assert err["itl_err_p99_ms"] == pytest.approx(0.0001 * 0.99, rel=1e-6)


def test_max_accurate_rate_needs_every_limit():
    rows = [{"rate": 5, "ttft_err_p50_ms": 0.1, "ttft_err_p99_ms": 0.5, "achieved_rate": 5.0},
            {"rate": 50, "ttft_err_p50_ms": 0.2, "ttft_err_p99_ms": 1.9, "achieved_rate": 49.6},
            {"rate": 100, "ttft_err_p50_ms": 0.2, "ttft_err_p99_ms": 1.0, "achieved_rate": 95.0},
            {"rate": 200, "ttft_err_p50_ms": 3.0, "ttft_err_p99_ms": 9.0, "achieved_rate": 200.0}]
    assert [accurate(r) for r in rows] == [True, True, False, False]
    assert max_accurate_rate(rows) == 50
    assert max_accurate_rate(rows, ttft_p99_ms=1.0) == 5
    assert max_accurate_rate(rows[3:]) is None


@pytest.mark.slow
def test_calibrate_stores_one_run_per_rate_and_reports_json(cli, tmp_path):
    store = tmp_path / "c.duckdb"
    res = cli("calibrate", "--rates", "5,20", "--duration", "2", "--chunks", "8", "--store", str(store), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    assert [r["rate"] for r in out["rows"]] == [5.0, 20.0]
    for r in out["rows"]:
        assert r["matched"] == r["ok"] == r["requests"] > 0
        assert abs(r["ttft_err_p50_ms"]) < 5 and r["achieved_rate"] > 0
        assert r["client_cpu_pct"] is not None
    assert out["max_accurate_rate"] in (None, 5.0, 20.0)
    with duckdb.connect(str(store), read_only=True) as con:
        labels = sorted(x for (x,) in con.execute("SELECT label FROM runs").fetchall())
    assert labels == ["calibrate 20 req/s", "calibrate 5 req/s"]


@pytest.mark.slow
def test_calibrate_table_names_the_maximum_accurate_rate(cli, tmp_path):
    res = cli("calibrate", "--rates", "5", "--duration", "1", "--chunks", "4", "--store", str(tmp_path / "c.duckdb"))
    assert res.returncode == 0, res.stderr
    assert "maximum accurate rate:" in res.stdout


def test_calibrate_rejects_bad_rates(cli, tmp_path):
    res = cli("calibrate", "--rates", "5,x", "--store", str(tmp_path / "c.duckdb"))
    assert res.returncode == 2 and "bad --rates" in res.stderr, res.stderr


TWO_CPUS = pytest.mark.skipif(not hasattr(__import__("os"), "sched_getaffinity")
                              or len(__import__("os").sched_getaffinity(0)) < 2, reason="needs 2 CPUs and Linux")


@pytest.mark.slow
@TWO_CPUS
def test_calibrate_pins_server_and_client_to_their_cpus(cli, tmp_path):
    import os

    server_cpu, client_cpu = sorted(os.sched_getaffinity(0))[:2]
    res = cli("calibrate", "--rates", "10", "--duration", "2", "--chunks", "4", "--server-cpus", str(server_cpu),
              "--client-cpus", str(client_cpu), "--store", str(tmp_path / "c.duckdb"), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["pinning"] == {"server_cpus": [server_cpu], "client_cpus": [client_cpu]}
    assert out["rows"][0]["matched"] == out["rows"][0]["ok"] > 0
    table = cli("calibrate", "--rates", "5", "--duration", "1", "--chunks", "4", "--client-cpus", str(client_cpu),
                "--store", str(tmp_path / "c.duckdb"))
    assert table.returncode == 0, table.stderr
    assert f"pinned: client on CPUs {client_cpu}" in table.stdout


@pytest.mark.parametrize("args, needle", [
    (["--client-cpus", "9999"], "bad --client-cpus '9999': this process may use CPUs"),
    (["--server-cpus", "one"], "bad --server-cpus 'one': use CPU numbers"),
    (["--server-cpus", "0", "--target", "http://127.0.0.1:9", "--server-log", "x.jsonl"],
     "--server-cpus pins the built-in server only"),
])
def test_bad_pinning_is_one_line(cli, args, needle):
    res = cli("calibrate", "--rates", "5", "--duration", "1", *args)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and needle in res.stderr, res.stderr
