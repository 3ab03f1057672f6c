"""Never lose data: a run killed at any moment keeps every request spooled before the kill.

Real processes throughout: `servelab run` (in its own session, see conftest.py) starts
the built-in server and the Locust load generator; the tests SIGKILL one of the three
mid-run and then check the DuckDB store. Kill times are taken with perf_counter_ns,
the clock every process on the machine shares with the spool records.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import duckdb
import psutil
import pytest

pytestmark = pytest.mark.slow

TINY_CLOSED = ["--target", "builtin", "--model", "tiny", "--users", "2", "--max-tokens", "8",
               "--prompt-tokens", "16"]
ERRORS = {"conn_error", "stream_error"}


def complete_records(path: Path) -> list[dict]:
    """The spool lines a reader sees now; an unterminated last line does not count."""
    records = []
    for line in path.read_bytes().split(b"\n")[:-1]:
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


def wait_until(predicate, timeout_s: float, what: str, poll_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def start_run(cli, tmp_path: Path, store: Path, duration: float):
    out, err = open(tmp_path / "cli.out", "w"), open(tmp_path / "cli.err", "w")
    with out, err:
        return cli.popen(["run", *TINY_CLOSED, "--duration", str(duration), "--store", str(store)],
                         stdout=out, stderr=err)


def wait_for_spool(proc, tmp_path: Path, store: Path, lines: int = 5) -> Path:
    """The run's requests-w0.jsonl once it holds `lines` complete lines."""
    def ready():
        if proc.poll() is not None:
            pytest.fail(f"servelab run exited early ({proc.returncode}): "
                        f"{(tmp_path / 'cli.err').read_text()[-2000:]}")
        for path in Path(f"{store}.spool").glob("*/step-0/requests-w0.jsonl"):
            if len(complete_records(path)) >= lines:
                return path
        return None

    return wait_until(ready, 120, f"{lines} lines in the spool")


def child(proc, module: str) -> psutil.Process:
    """The CLI's child running `python -m MODULE`."""
    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if any(a == "-m" and b == module for a, b in zip(cmd, cmd[1:])):
            return p
    pytest.fail(f"no `-m {module}` child of the CLI")


def is_dead(p: psutil.Process) -> bool:
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def stored(store: Path, run_id: str) -> tuple[str, dict[str, tuple[str, int | None]]]:
    """(run status, {req_id: (status, t_send_ns)}), read through a read-only connection."""
    with duckdb.connect(str(store), read_only=True) as con:
        (status,) = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
        rows = con.execute("SELECT req_id, status, t_send_ns FROM requests WHERE run_id = ?",
                           [run_id]).fetchall()
    return status, {r: (s, t) for r, s, t in rows}


def listed_run(cli, store: Path, run_id: str) -> dict:
    res = cli("runs", "--json", "--store", str(store))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    rows = [r for r in json.loads(res.stdout.splitlines()[-1]) if r["run_id"] == run_id]
    assert len(rows) == 1, res.stdout
    return rows[0]


def test_kill_cli_children_exit_and_run_is_recovered_interrupted(cli, tmp_path):
    store = tmp_path / "s.duckdb"
    proc = start_run(cli, tmp_path, store, duration=20)
    spool = wait_for_spool(proc, tmp_path, store)
    run_id = spool.parent.parent.name
    children = [child(proc, "loadtest.worker"), child(proc, "serving")]

    before = complete_records(spool)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL

    # PR_SET_PDEATHSIG: both children get SIGTERM and stop by themselves.
    wait_until(lambda: all(is_dead(p) for p in children), 10,
               "the server and the load generator to exit after the CLI was killed")
    wait_until(lambda: not cli.session(proc), 10, "the run's session to be empty")

    row = listed_run(cli, store, run_id)
    assert row["status"] == "interrupted"
    assert row["requests"] >= len(before) > 0
    status, requests = stored(store, run_id)  # read-only open of the recovered store
    assert status == "interrupted"
    missing = {r["req_id"] for r in before} - set(requests)
    assert not missing, f"{len(missing)} spooled requests lost, e.g. {sorted(missing)[:3]}"
    assert not (Path(f"{store}.spool") / run_id).exists(), "the spool was not cleaned up"


def test_kill_load_generator_marks_run_interrupted_and_keeps_spool(cli, tmp_path):
    store = tmp_path / "s.duckdb"
    proc = start_run(cli, tmp_path, store, duration=20)
    spool = wait_for_spool(proc, tmp_path, store)
    run_id = spool.parent.parent.name
    worker, server = child(proc, "loadtest.worker"), child(proc, "serving")

    before = complete_records(spool)
    worker.kill()
    proc.wait(60)  # any exit code: the run itself is what must survive
    err = (tmp_path / "cli.err").read_text()
    assert "Traceback" not in err, err
    assert is_dead(server), "the CLI left the built-in server running"

    # servelab/runner.py: a worker killed by a signal (rc < 0) ends the run `interrupted`.
    row = listed_run(cli, store, run_id)
    assert row["status"] == "interrupted"
    assert row["requests"] >= len(before) > 0
    status, requests = stored(store, run_id)
    assert status == "interrupted"
    missing = {r["req_id"] for r in before} - set(requests)
    assert not missing, f"{len(missing)} spooled requests lost, e.g. {sorted(missing)[:3]}"


def test_kill_target_run_completes_with_errors_recorded(cli, tmp_path):
    store = tmp_path / "s.duckdb"
    proc = start_run(cli, tmp_path, store, duration=4)
    spool = wait_for_spool(proc, tmp_path, store)
    run_id = spool.parent.parent.name
    server = child(proc, "serving")

    server.kill()
    wait_until(lambda: is_dead(server), 10, "the server to die")
    t_dead = time.perf_counter_ns()  # same clock as the records' t_send_ns

    assert proc.wait(90) == 0, (tmp_path / "cli.err").read_text()[-2000:]
    assert "Traceback" not in (tmp_path / "cli.err").read_text()

    row = listed_run(cli, store, run_id)
    assert row["status"] == "completed"
    status, requests = stored(store, run_id)
    assert status == "completed"
    assert {s for s, _ in requests.values()} <= {"ok"} | ERRORS
    assert any(s == "ok" for s, _ in requests.values()), "nothing succeeded before the kill"
    after = [s for s, t in requests.values() if t is not None and t > t_dead]
    assert after, "no request was recorded after the target died"
    assert set(after) <= ERRORS, after

    res = cli("summary", run_id, "--json", "--store", str(store))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["status"] == "completed"
    assert summary["errors"] > 0
    assert summary["requests"] == len(requests)
