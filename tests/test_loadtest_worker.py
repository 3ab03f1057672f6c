"""The worker as a real process against the reference server's calibration mode.

Calibration mode (`python -m serving`, calibration=true) streams exactly max_tokens
chunks, the first `calib_ttft_ms` after the request arrives and then one every
`calib_itl_ms`, and logs when each chunk really left (perf_counter_ns, the same clock the
worker uses), so the worker's records can be checked against the truth.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtest.record import REQUEST_KEYS

pytestmark = pytest.mark.slow

TTFT_MS, ITL_MS = 50.0, 10.0


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start_server(tmp: Path, **overrides) -> tuple[subprocess.Popen, str, Path]:
    log = tmp / "calib.jsonl"
    cfg = {"calibration": True, "calib_ttft_ms": TTFT_MS, "calib_itl_ms": ITL_MS, "calib_log": str(log), **overrides}
    out = tmp / "server.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "serving", "--config-json", json.dumps(cfg)],
                                stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in out.read_text().splitlines():
            if "listening on " in line:
                return proc, line.split("listening on ")[1].strip(), log
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"calibration server did not start: {out.read_text()[-500:]}")


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    proc, url, log = start_server(tmp_path_factory.mktemp("calib"))
    yield url, log
    proc.terminate()
    proc.wait(10)


def write_spec(tmp: Path, url: str, load: dict, **extra) -> tuple[Path, Path]:
    spool = tmp / "spool" / "step-0"
    spec = {"run_id": "r-test", "step": 0, "producer": "w0", "target_url": url, "builtin": True,
            "load": {"max_tokens": 4, "prompt_tokens": 32, **load}, "spool_dir": str(spool), **extra}
    path = tmp / "spec.json"
    path.write_text(json.dumps(spec))
    return path, spool


def worker_cmd(spec: Path) -> list[str]:
    return [sys.executable, "-m", "loadtest.worker", "--spec", str(spec)]


def run_worker(tmp: Path, url: str, load: dict, timeout: float = 60, **extra):
    spec, spool = write_spec(tmp, url, load, **extra)
    proc = subprocess.run(worker_cmd(spec), capture_output=True, text=True, timeout=timeout)
    return proc, spool


def stdout_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def events(spool: Path) -> list[str]:
    return [m["event"] for m in read_jsonl(spool / "meta-w0.jsonl")]


def start_worker(tmp: Path, url: str, load: dict) -> tuple[subprocess.Popen, Path, Path]:
    """A worker in the background; returns once it printed its first progress line (t0 passed)."""
    spec, spool = write_spec(tmp, url, load)
    out = tmp / "worker.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen(worker_cmd(spec), stdout=fh, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while '"progress"' not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, spool, out


def test_closed_loop_writes_one_complete_line_per_request(calib, tmp_path):
    url, _ = calib
    proc, spool = run_worker(tmp_path, url, {"mode": "closed", "users": 3, "duration_s": 1.5})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    records = read_jsonl(spool / "requests-w0.jsonl")
    lines = stdout_lines(proc.stdout)
    assert "progress" in lines[0] and lines[-1] == {"done": {"sent": len(records), "completed": len(records), "errors": 0}}
    assert len(records) >= 3 * 10  # each request takes ~80 ms: ~18 per user in 1.5 s
    assert len({r["req_id"] for r in records}) == len(records)
    for r in records:
        assert tuple(r) == REQUEST_KEYS
        assert r["status"] == "ok" and r["http_status"] == 200 and r["t_sched_ns"] is None
        assert r["user_id"] in (0, 1, 2) and r["producer"] == "w0"
        assert len(r["chunk_ns"]) == r["output_tokens"] == r["output_tokens_client"] == 4
        assert r["prompt_tokens"] == r["prompt_tokens_client"] == 32  # byte tokenizer: exact
        assert r["t_send_ns"] < r["t_first_ns"] == r["chunk_ns"][0] <= r["chunk_ns"][-1] <= r["t_last_ns"]
        assert r["server"]["output_tokens"] == 4
    meta = read_jsonl(spool / "meta-w0.jsonl")
    assert [m["event"] for m in meta] == ["start", "stop", "end"]
    start, stop, end = meta
    assert isinstance(start["pid"], int) and isinstance(start["wall_ns"], int)
    assert 1.45e9 < stop["t_ns"] - start["t_ns"] < 1.6e9 and stop["sent"] == len(records)
    assert min(r["t_send_ns"] for r in records) >= start["t_ns"] and end["t_ns"] >= max(r["t_last_ns"] for r in records)
    first_sends = sorted(r["t_send_ns"] for r in records)[:3]
    assert first_sends[-1] - start["t_ns"] < 20e6  # all users start together at t0


def test_open_loop_sends_on_schedule(calib, tmp_path):
    url, _ = calib
    load = {"mode": "open", "rate": 5, "arrival": "constant", "duration_s": 3}
    proc, spool = run_worker(tmp_path, url, load)
    assert proc.returncode == 0, proc.stderr
    records = sorted(read_jsonl(spool / "requests-w0.jsonl"), key=lambda r: r["t_sched_ns"])
    t0 = read_jsonl(spool / "meta-w0.jsonl")[0]["t_ns"]
    assert [r["t_sched_ns"] - t0 for r in records] == [k * 200_000_000 for k in range(15)]
    assert all(r["status"] == "ok" and r["user_id"] is None for r in records)
    lateness_ms = [(r["t_send_ns"] - r["t_sched_ns"]) / 1e6 for r in records]
    assert min(lateness_ms) >= 0 and statistics.median(lateness_ms) < 2
    assert stdout_lines(proc.stdout)[-1] == {"done": {"sent": 15, "completed": 15, "errors": 0}}


@pytest.mark.parametrize(
    "load",
    [
        {"mode": "closed", "users": 2, "max_requests": 5},
        {"mode": "closed", "users": 1, "max_requests": 1},  # the last claim is not cut by the drain
        {"mode": "open", "rate": 50, "max_requests": 1},
    ],
)
def test_max_requests_ends_the_step_early(calib, tmp_path, load):
    url, _ = calib
    started = time.monotonic()
    proc, spool = run_worker(tmp_path, url, {"duration_s": 60, **load})
    assert proc.returncode == 0, proc.stderr
    records = read_jsonl(spool / "requests-w0.jsonl")
    assert len(records) == load["max_requests"] and all(r["status"] == "ok" for r in records)
    assert events(spool) == ["start", "stop", "end"]
    assert time.monotonic() - started < 30


def match_to_server_log(records: list[dict], log: list[dict]) -> list[tuple[dict, dict]]:
    """Pairs each request with the server log entry received first after it was sent."""
    log = sorted(log, key=lambda e: e["t_recv_ns"])
    pairs, used = [], set()
    for rec in sorted(records, key=lambda r: r["t_send_ns"]):
        i = next(i for i, e in enumerate(log) if i not in used and e["t_recv_ns"] >= rec["t_send_ns"])
        used.add(i)
        assert log[i]["t_recv_ns"] - rec["t_send_ns"] < 20e6  # really the same request
        pairs.append((rec, log[i]))
    return pairs


def test_accuracy_against_calibration_mode(calib, tmp_path):
    url, log_path = calib
    load = {"mode": "open", "rate": 5, "arrival": "constant", "duration_s": 3, "max_tokens": 8}
    proc, spool = run_worker(tmp_path, url, load)
    assert proc.returncode == 0, proc.stderr
    records = read_jsonl(spool / "requests-w0.jsonl")
    assert len(records) == 15 and all(r["status"] == "ok" for r in records)
    pairs = match_to_server_log(records, read_jsonl(log_path))
    ttft_err_ms = [abs(r["t_first_ns"] - e["chunk_ns"][0]) / 1e6 for r, e in pairs]
    itl_err_ms = [
        abs((c1 - c0) - (s1 - s0)) / 1e6
        for r, e in pairs
        for c0, c1, s0, s1 in zip(r["chunk_ns"], r["chunk_ns"][1:], e["chunk_ns"], e["chunk_ns"][1:])
    ]
    assert len(itl_err_ms) == 15 * 7
    assert statistics.median(ttft_err_ms) < 3
    assert statistics.median(itl_err_ms) < 3
    client_itl = statistics.median(b - a for r, _ in pairs for a, b in zip(r["chunk_ns"], r["chunk_ns"][1:]))
    assert abs(client_itl / 1e6 - ITL_MS) < 3


def test_unreachable_target_exits_3_with_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, spool = run_worker(tmp_path, f"http://127.0.0.1:{port}", {"mode": "closed"})
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"cannot reach http://127.0.0.1:{port}: ") and "refused" in proc.stderr.lower()
    assert proc.stdout == "" and not (spool / "requests-w0.jsonl").exists()


def test_target_that_rejects_the_request_exits_4(calib, tmp_path):
    url, _ = calib
    proc, _ = run_worker(tmp_path, url + "/no-such-prefix", {"mode": "closed"})
    assert proc.returncode == 4
    assert proc.stderr.count("\n") == 1 and "HTTP 404" in proc.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"load": {"mode": "open"}}, "load: Value error, open-loop load needs a rate"),
        ({"target_url": "ftp://x"}, "bad target URL"),
        ({"api_key_env": "SERVELAB_TEST_UNSET_KEY"}, "SERVELAB_TEST_UNSET_KEY, which is not set"),
    ],
)
def test_bad_spec_exits_2_with_one_line(tmp_path, extra, message):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"run_id": "r", "step": 0, "producer": "w0", "target_url": "http://127.0.0.1:9",
                                "load": {}, "spool_dir": str(tmp_path), **extra}))
    proc = subprocess.run(worker_cmd(spec), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr


def test_server_killed_mid_stream_is_recorded_and_the_worker_ends_normally(tmp_path):
    server, url, _ = start_server(tmp_path)
    try:
        load = {"mode": "closed", "users": 2, "duration_s": 2.5, "drain_s": 1, "max_tokens": 200}
        worker, spool, out = start_worker(tmp_path, url, load)
        time.sleep(0.5)  # both users are mid-stream (each stream lasts ~2 s)
        server.send_signal(signal.SIGKILL)
        worker.wait(30)
    finally:
        server.kill()
    assert worker.returncode == 0, worker.stderr.read()
    records = read_jsonl(spool / "requests-w0.jsonl")
    cut = [r for r in records if r["chunk_ns"]]
    assert len(cut) == 2 and all(r["status"] in ("stream_error", "conn_error") for r in cut)
    assert all(0 < len(r["chunk_ns"]) < 200 for r in cut)
    later = [r for r in records if not r["chunk_ns"]]
    assert later and all(r["status"] == "conn_error" and r["error"] for r in later)
    assert events(spool) == ["start", "stop", "end"]
    assert stdout_lines(out.read_text())[-1]["done"]["errors"] == len(records)


def test_sigterm_cancels_in_flight_requests_and_exits_0(calib, tmp_path):
    url, _ = calib
    load = {"mode": "closed", "users": 2, "duration_s": 60, "max_tokens": 100}
    worker, spool, out = start_worker(tmp_path, url, load)
    time.sleep(0.3)
    worker.send_signal(signal.SIGTERM)
    worker.wait(15)
    assert worker.returncode == 0, worker.stderr.read()
    records = read_jsonl(spool / "requests-w0.jsonl")
    assert len(records) == 2
    for r in records:
        assert r["status"] == "cancelled" and 0 < len(r["chunk_ns"]) < 100
        assert r["t_last_ns"] >= r["chunk_ns"][-1]
    assert events(spool) == ["start", "stop", "end"]
    assert stdout_lines(out.read_text())[-1] == {"done": {"sent": 2, "completed": 0, "errors": 2}}


def test_sigkill_of_the_worker_leaves_only_whole_lines_but_maybe_the_last(calib, tmp_path):
    url, _ = calib
    load = {"mode": "closed", "users": 8, "duration_s": 60, "max_tokens": 2}
    worker, spool, _ = start_worker(tmp_path, url, load)
    time.sleep(1.0)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(10)
    lines = (spool / "requests-w0.jsonl").read_bytes().split(b"\n")
    whole, last = lines[:-1], lines[-1]
    assert len(whole) > 20
    for line in whole:
        assert tuple(json.loads(line)) == REQUEST_KEYS
    if last:  # a line cut by the kill: the ingest skips it
        with pytest.raises(ValueError):
            json.loads(last)
    assert events(spool) == ["start"]  # no stop/end: the ingest knows it was killed
