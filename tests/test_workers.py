"""`servelab run --workers N`: shards, one shared t0, and no lost records when a worker dies.

Real processes (conftest.py's `cli`): the built-in server in calibration mode and two
Locust workers. The spool files are watched until ingest removes them; every line ever
seen in them must be in the store.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import duckdb
import pytest

from servelab.config import LoadConfig
from loadtest.sharding import shard_load, split
import psutil

from tests.test_run_kill import complete_records, is_dead, wait_until

pytestmark = pytest.mark.slow
LOAD = ["--calibration", "--calib-ttft-ms", "5", "--calib-itl-ms", "5", "--max-tokens", "8",
        "--prompt-tokens", "16", "--workers", "2"]


@pytest.mark.parametrize(("total", "n"), [(5, 2), (4, 4), (7, 3)])
def test_split_shares_add_up_evenly(total, n):
    shares = [split(total, n, i) for i in range(n)]
    assert sum(shares) == total and max(shares) - min(shares) <= 1


def test_closed_loop_users_are_split_open_loop_kept_whole():
    closed = LoadConfig(mode="closed", users=5, max_requests=9)
    assert [shard_load(closed, 2, i).users for i in range(2)] == [3, 2]
    assert [shard_load(closed, 2, i).max_requests for i in range(2)] == [5, 4]
    opened = LoadConfig(mode="open", rate=10)
    assert shard_load(opened, 2, 1) == opened


def worker_proc(proc, producer: str) -> psutil.Process:
    """The CLI's `python -m loadtest.worker` child that runs spec-<producer>.json."""
    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "loadtest.worker" in cmd and f"spec-{producer}.json" in cmd:
            return p
    pytest.fail(f"no worker {producer} under the CLI")


def test_specs_share_one_t0_and_number_users_across_workers(tmp_path):
    import time

    from loadtest.spec import WorkerSpec
    from servelab.workers import write_specs

    base = {"run_id": "r", "step": 0, "target_url": "http://127.0.0.1:1", "spool_dir": str(tmp_path)}
    paths = write_specs(base, LoadConfig(mode="closed", users=5), 2, tmp_path)
    specs = [WorkerSpec.model_validate_json(p.read_text()) for p in paths]
    assert [(s.producer, s.shard, s.shards, s.load.users, s.first_user) for s in specs] == [
        ("w0", 0, 2, 3, 0), ("w1", 1, 2, 2, 3)]
    assert specs[0].t0_ns == specs[1].t0_ns > time.perf_counter_ns()
    (one,) = write_specs(base, LoadConfig(mode="closed", users=5), 1, tmp_path)
    assert WorkerSpec.model_validate_json(one.read_text()).t0_ns is None  # one worker starts when ready


class SpoolWatcher(threading.Thread):
    """Collects every complete record line seen in the step's request files, until stopped."""

    def __init__(self, store: Path):
        super().__init__(daemon=True)
        self.store, self.seen, self.stop = store, {}, threading.Event()

    def run(self):
        while not self.stop.wait(0.02):
            for path in Path(f"{self.store}.spool").glob("*/step-0/requests-w*.jsonl"):
                try:
                    for r in complete_records(path):
                        self.seen[r["req_id"]] = path.parent.parent.name
                except OSError:
                    pass  # removed by ingest meanwhile


def stored_ids(store: Path, run_id: str) -> tuple[str, dict[str, str]]:
    with duckdb.connect(str(store), read_only=True) as con:
        (status,) = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
        rows = con.execute("SELECT req_id, producer FROM requests WHERE run_id = ?", [run_id]).fetchall()
    return status, dict(rows)


def test_two_workers_share_the_schedule_and_complete(cli, tmp_path):
    store = tmp_path / "s.duckdb"
    res = cli("run", *LOAD, "--rate", "20", "--arrival", "constant", "--duration", "2",
              "--store", str(store), "--json")
    assert res.returncode == 0, res.stderr
    run_id = json.loads(res.stdout.splitlines()[-1])["run_id"]
    status, ids = stored_ids(store, run_id)
    assert status == "completed"
    assert set(ids.values()) == {"w0", "w1"}
    assert sum(p == "w0" for p in ids.values()) - sum(p == "w1" for p in ids.values()) in (0, 1)
    with duckdb.connect(str(store), read_only=True) as con:
        sched = [t for (t,) in con.execute("SELECT t_sched_ns FROM requests WHERE run_id = ? ORDER BY 1",
                                           [run_id]).fetchall()]
    gaps = {round((b - a) / 1e6) for a, b in zip(sched, sched[1:])}
    assert gaps == {50}, gaps  # one constant 20 req/s schedule, interleaved over both workers


def test_sigkill_one_worker_keeps_every_spooled_record(cli, tmp_path):
    store = tmp_path / "s.duckdb"
    watcher = SpoolWatcher(store)
    watcher.start()
    with open(tmp_path / "cli.err", "w") as err:
        proc = cli.popen(["run", *LOAD, "--rate", "30", "--duration", "8", "--store", str(store)],
                         stdout=open(tmp_path / "cli.out", "w"), stderr=err)
    wait_until(lambda: sum(1 for v in list(watcher.seen) if v.startswith("w1-")) >= 5, 120,
               "five w1 records in the spool")
    w1 = worker_proc(proc, "w1")
    w1.kill()
    wait_until(lambda: is_dead(w1), 10, "w1 to die")
    proc.wait(120)  # any exit code: the records are what must survive
    assert "Traceback" not in (tmp_path / "cli.err").read_text()
    watcher.stop.set()
    watcher.join(5)
    run_id = next(iter(watcher.seen.values()))
    status, ids = stored_ids(store, run_id)
    assert status == "interrupted"  # the documented rule: any worker killed -> interrupted
    missing = set(watcher.seen) - set(ids)
    assert not missing, f"{len(missing)} spooled records lost, e.g. {sorted(missing)[:3]}"
    w0_after = [i for i in ids if i.startswith("w0-")]
    w1_kept = [i for i in ids if i.startswith("w1-")]
    assert w1_kept and len(w0_after) > len(w1_kept), "w0 went on after w1 was killed"


@pytest.mark.parametrize("shard", [0, 1])
def test_trace_lengths_follow_the_shards_arrivals(shard):
    import numpy as np

    from loadtest.prompts import BodyFactory
    from loadtest.traces import Trace

    n = 6
    trace = Trace(t_s=np.arange(n, dtype=float), prompt=np.arange(10, 10 + n), output=np.arange(1, 1 + n))
    load = LoadConfig(mode="open", arrival="trace", workload="trace", trace_path="t.csv", max_context=4096)
    bodies = BodyFactory(load, True, f"w{shard}", trace, 0, shard, 2)
    got = [bodies.next_body().max_tokens for _ in range(3)]
    assert got == [1 + i for i in range(shard, n, 2)]  # rows shard, shard + 2, ...
