"""Run locks and recovery of runs whose process died (a real SIGKILLed subprocess)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from store import (
    RunLock, StoreError, add_step, create_run, finish_run, get_requests, get_run, get_steps,
    ingest_step, recover, spool_dir,
)
from store.runs import spool_root
from store.schema import connect_read

MS = 1_000_000

OWNER = textwrap.dedent("""
    import json, sys, time
    from store import RunLock, add_step, create_run, spool_dir
    path, run_id = sys.argv[1], sys.argv[2]
    lock = RunLock(path, run_id).__enter__()
    create_run(path, run_id, {"load": {"mode": "closed"}}, "builtin", "killed", {}, "0")
    add_step(path, run_id, 0, "closed", 1, None, 60.0, 0.0)
    d = spool_dir(path, run_id, 0)
    with open(d / "meta-w0.jsonl", "w") as f:
        f.write(json.dumps({"event": "start", "t_ns": 1000, "wall_ns": 7, "pid": 1}) + "\\n")
    with open(d / "requests-w0.jsonl", "w") as f:
        for i in range(3):
            f.write(json.dumps({"req_id": f"w0-{i}", "t_send_ns": 2000 + i, "t_first_ns": 3000 + i,
                                "t_last_ns": 4000 + i, "chunk_ns": [3000 + i, 4000 + i], "status": "ok",
                                "output_tokens_client": 2}) + "\\n")
        f.write('{"req_id": "w0-3", "t_se')
    print("ready", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def owner(tmp_path):
    """A live process that owns run `rk`: lock taken, spool half written, never finishing."""
    path = tmp_path / "s.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(path), "rk"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield path, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def test_a_run_whose_owner_lives_is_not_recovered(owner):
    path, _ = owner
    assert recover(path) == []
    assert get_run(path, "rk")["status"] == "running"
    assert (spool_root(path) / "rk" / "step-0" / "requests-w0.jsonl").exists()


def test_a_killed_run_is_ingested_and_marked_interrupted(owner):
    path, proc = owner
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert recover(path) == ["rk"]
    run = get_run(path, "rk")
    assert run["status"] == "interrupted" and run["ended_at"] is not None
    assert list(get_requests(path, "rk")["req_id"]) == ["w0-0", "w0-1", "w0-2"]
    (step,) = get_steps(path, "rk")
    assert (step["status"], step["t_start_ns"], step["t_end_ns"]) == ("interrupted", 1000, 4002)
    assert not (spool_root(path) / "rk").exists()
    with connect_read(path, timeout_s=1) as con:  # nothing left holding the file
        assert con.execute("SELECT count(*) FROM requests").fetchone() == (3,)
    assert recover(path) == []  # nothing twice


def test_a_lock_held_in_this_process_also_blocks_recovery(tmp_path):
    path = tmp_path / "s.duckdb"
    with RunLock(path, "r1"):
        create_run(path, "r1", {}, "builtin", None, {}, "0")
        (spool_dir(path, "r1", 0) / "requests-w0.jsonl").write_text(
            '{"req_id": "a", "t_send_ns": 1, "status": "ok"}\n')
        assert recover(path) == []
    assert recover(path) == ["r1"]
    assert get_run(path, "r1")["status"] == "interrupted"


def test_recover_with_nothing_to_do_opens_no_store(tmp_path):
    path = tmp_path / "s.duckdb"
    assert recover(path) == []
    assert not path.exists()


def test_a_finished_run_leaves_no_spool_and_is_not_recovered(tmp_path):
    path = tmp_path / "s.duckdb"
    with RunLock(path, "r1"):
        create_run(path, "r1", {}, "builtin", None, {}, "0")
        add_step(path, "r1", 0, "closed", 1, None, 1.0, 0.0)
        (spool_dir(path, "r1", 0) / "requests-w0.jsonl").write_text(
            '{"req_id": "a", "t_send_ns": 1, "status": "ok"}\n')
        (spool_dir(path, "r1", 0) / "spec-w0.json").write_text("{}")  # a runner's own file
        ingest_step(path, "r1", 0)
        finish_run(path, "r1", "completed")
    assert list(spool_root(path).iterdir()) == []
    assert recover(path) == []
    assert get_run(path, "r1")["status"] == "completed"


def test_leftover_spool_of_a_finished_run_is_ingested_without_changing_its_status(tmp_path):
    path = tmp_path / "s.duckdb"
    with RunLock(path, "r1"):
        create_run(path, "r1", {}, "builtin", None, {}, "0")
        (spool_dir(path, "r1", 0) / "requests-w0.jsonl").write_text(
            '{"req_id": "a", "t_send_ns": 1, "status": "ok"}\n')
        finish_run(path, "r1", "failed", "ingest crashed")
    assert recover(path) == ["r1"]
    run = get_run(path, "r1")
    assert (run["status"], run["error"]) == ("failed", "ingest crashed")
    assert len(get_requests(path, "r1")) == 1


def test_spool_of_a_run_with_no_row_becomes_an_interrupted_run(tmp_path):
    path = tmp_path / "s.duckdb"
    (spool_dir(path, "ghost", 0) / "requests-w0.jsonl").write_text(
        '{"req_id": "a", "t_send_ns": 1, "status": "ok"}\n')
    assert recover(path) == ["ghost"]
    assert get_run(path, "ghost")["status"] == "interrupted"


def test_run_lock_is_exclusive(tmp_path):
    path = tmp_path / "s.duckdb"
    with RunLock(path, "r1"):
        with pytest.raises(StoreError, match="run r1 is locked"):
            RunLock(path, "r1", timeout_s=0.2).__enter__()
    with RunLock(path, "r1", timeout_s=0.2):  # free again once released
        pass


def test_run_ids_cannot_escape_the_spool_directory(tmp_path):
    with pytest.raises(StoreError, match="bad run id"):
        spool_dir(tmp_path / "s.duckdb", "../evil", 0)


def test_recover_leaves_a_run_for_later_while_the_store_is_busy(tmp_path, monkeypatch):
    import functools

    from store import ingest as ingest_mod

    path = tmp_path / "s.duckdb"
    with RunLock(path, "r1"):
        create_run(path, "r1", {}, "builtin", None, {}, "0")
    hold = subprocess.Popen([sys.executable, "-c", "import sys; from store.schema import connect_write;"
                             "c = connect_write(sys.argv[1]); print('ready', flush=True); sys.stdin.read()", str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "ready"
        monkeypatch.setattr(ingest_mod, "connect_read", functools.partial(connect_read, timeout_s=0.3))
        assert recover(path) == []  # busy: skipped, not an error
    finally:
        hold.stdin.close()
        hold.wait(timeout=30)
    assert recover(path) == ["r1"]


def test_a_child_holding_the_inherited_lock_keeps_the_run_alive(tmp_path):
    path = tmp_path / "s.duckdb"
    with RunLock(path, "r1") as lock:
        create_run(path, "r1", {}, "builtin", None, {}, "0")
        child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                 stdin=subprocess.PIPE, pass_fds=(lock.fileno(),))
    try:
        assert recover(path) == []  # the parent let go, but the load process still runs
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    assert recover(path) == ["r1"]
    with pytest.raises(StoreError, match="not locked"):
        lock.fileno()
