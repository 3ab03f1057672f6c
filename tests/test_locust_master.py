"""Locust's master/worker mode: a master hands out shards; workers on this machine spool
directly, workers "from another machine" (--ship) send their records to the master."""

import json
import signal
import subprocess
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from loadtest import shipping
from store import queries

CALIB = ["--target", "builtin", "--calibration", "--calib-ttft-ms", "5", "--calib-itl-ms", "2",
         "--max-tokens", "8", "--prompt-tokens", "16", "--arrival", "constant", "--warmup", "0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_shift_moves_monotonic_times_only():
    rec = {"t_sched_ns": 10, "t_send_ns": 11, "t_first_ns": None, "t_last_ns": 20, "chunk_ns": [12, 15],
           "wall_send_ns": 999}
    out = shipping.shift_record(rec, 100)
    assert out == {"t_sched_ns": 110, "t_send_ns": 111, "t_first_ns": None, "t_last_ns": 120,
                   "chunk_ns": [112, 115], "wall_send_ns": 999}
    assert rec["t_send_ns"] == 11  # the input is not changed
    assert shipping.shift_meta({"event": "start", "t_ns": 5, "wall_ns": 7}, -5) == {"event": "start", "t_ns": 0, "wall_ns": 7}
    assert shipping.clock_delta(1_000, 400) == 600
    assert [len(b) for b in shipping.batches(list(range(1201)))] == [500, 500, 201]


@pytest.mark.parametrize("args, message", [
    (["--remote-workers", "1"], "remote workers need master_bind on an address other machines reach"),
    (["--locust-master", "--master-bind", "nohost:x"], "bad master_bind"),
])
def test_bad_master_flags_are_one_line(cli, tmp_path, args, message):
    res = cli("run", *CALIB, "--rate", "5", "--duration", "1", *args, "--store", str(tmp_path / "s.duckdb"))
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_two_local_workers_under_a_master_send_the_one_schedule(cli, tmp_path):
    store = str(tmp_path / "s.duckdb")
    res = cli("run", *CALIB, "--rate", "20", "--duration", "3", "--workers", "2", "--locust-master",
              "--store", store, "--json")
    assert res.returncode == 0, res.stderr
    summary = last_json(res.stdout)
    assert summary["status"] == "completed"
    reqs = queries.get_requests(store, summary["run_id"])
    assert sorted(reqs.producer.unique()) == ["w0", "w1"]
    assert len(reqs) == 60 and (reqs.status == "ok").all()
    gaps = np.diff(np.sort(reqs.t_sched_ns.to_numpy(dtype=np.int64))) / 1e6
    assert np.allclose(gaps, 50.0, atol=0.01)  # the union of the shards is the constant schedule
    import duckdb

    with duckdb.connect(store, read_only=True) as con:
        config = json.loads(con.execute("SELECT config FROM runs WHERE run_id = ?", [summary["run_id"]]).fetchone()[0])
    assert config["locust_master"] is True and config["workers"] == 2


@pytest.mark.slow
def test_closed_loop_users_are_spread_by_locusts_dispatcher(cli, tmp_path):
    store = str(tmp_path / "s.duckdb")
    res = cli("run", *CALIB, "--users", "4", "--duration", "2", "--workers", "2", "--locust-master",
              "--store", store, "--json")
    assert res.returncode == 0, res.stderr
    reqs = queries.get_requests(store, last_json(res.stdout)["run_id"])
    users = reqs.groupby("producer").user_id.unique()
    assert sorted(users.index) == ["w0", "w1"]
    assert sum(len(u) for u in users) == 4  # 4 users in all, ids unique across workers
    assert set(users["w0"]).isdisjoint(users["w1"])


def _start_run(cli, tmp_path, port: int, duration: float):
    store = str(tmp_path / "s.duckdb")
    proc = cli.popen(["run", *CALIB, "--rate", "20", "--duration", str(duration), "--workers", "1",
                      "--remote-workers", "1", "--master-bind", f"0.0.0.0:{port}", "--store", store, "--json"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    remote_spool = tmp_path / "remote"
    remote = cli.popen_module(["loadtest.worker", "--master", f"127.0.0.1:{port}", "--ship",
                               "--spool-dir", str(remote_spool)])
    return store, proc, remote, remote_spool


def _local_records(spool: Path) -> list[dict]:
    return [json.loads(line) for p in spool.glob("requests-*.jsonl") for line in p.read_text().splitlines()]


@pytest.mark.slow
def test_a_shipping_worker_reaches_the_store_on_the_masters_clock(cli, tmp_path):
    store, proc, remote, remote_spool = _start_run(cli, tmp_path, free_port(), 3)
    out, err = proc.communicate(timeout=120)
    assert remote.wait(30) == 0
    assert proc.returncode == 0, err
    summary = last_json(out)
    assert summary["status"] == "completed"
    reqs = queries.get_requests(store, summary["run_id"])
    assert len(reqs) == 60 and (reqs.status == "ok").all()
    local = {r["req_id"]: r for r in _local_records(remote_spool)}
    producer = next(iter(local.values()))["producer"]
    shipped = reqs[reqs.producer == producer]
    assert set(shipped.req_id) == set(local)  # every record it spooled reached the store
    # Same machine here, so the clock shift is tiny; the latencies are exactly the worker's own.
    for row in shipped.itertuples():
        mine = local[row.req_id]
        assert abs(row.t_send_ns - mine["t_send_ns"]) < 5_000_000
        assert row.t_last_ns - row.t_send_ns == mine["t_last_ns"] - mine["t_send_ns"]
    gaps = np.diff(np.sort(reqs.t_sched_ns.to_numpy(dtype=np.int64))) / 1e6
    assert np.allclose(gaps, 50.0, atol=0.1)


@pytest.mark.slow
def test_a_killed_remote_worker_keeps_what_it_shipped_and_the_run_is_interrupted(cli, tmp_path):
    store, proc, remote, remote_spool = _start_run(cli, tmp_path, free_port(), 12)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_local_records(remote_spool)) < 30:
        time.sleep(0.1)
    assert len(_local_records(remote_spool)) >= 30, "the remote worker never got going"
    remote.send_signal(signal.SIGKILL)
    remote.wait(10)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = last_json(out)
    assert summary["status"] == "interrupted"
    local = {r["req_id"] for r in _local_records(remote_spool)}
    reqs = queries.get_requests(store, summary["run_id"])
    producer = next(iter(_local_records(remote_spool)))["producer"]
    stored = set(reqs[reqs.producer == producer].req_id)
    assert stored <= local
    assert len(stored) >= len(local) - 10  # at most the last shipment (0.2 s at 10 req/s) is missing
    other = reqs[reqs.producer != producer]
    assert len(other) >= 100 and (other.status == "ok").all()  # the survivor ran its whole step
