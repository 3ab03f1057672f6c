"""The `servelab` command line as a user runs it: real processes, a real DuckDB store.

Every command runs as `python -m servelab.cli ...` in a subprocess (the `cli` fixture in
conftest.py), in the test's tmp dir so a forgotten --store can never land in the repo.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

COMMANDS = ["serve", "run", "calibrate", "runs", "summary", "export", "import", "gate", "dashboard", "demo", "sweep", "sweeps",
            "sweep-summary", "recommend", "frontier", "fidelity", "plan"]
QUANTILES = ["p50", "p90", "p95", "p99", "p999", "mean"]
LATENCIES = ["ttft_ms", "itl_ms", "tpot_ms", "e2e_ms", "schedule_lag_ms"]
HEAVY = ["torch", "duckdb", "pandas", "pyarrow", "numpy", "streamlit", "locust", "gevent",
         "uvicorn", "fastapi", "store", "serving", "analysis"]
TINY_LOAD = ["--target", "builtin", "--model", "tiny", "--max-tokens", "8", "--prompt-tokens", "16"]


def last_json(stdout: str):
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no output on stdout"
    return json.loads(lines[-1])


def assert_one_error_line(res: subprocess.CompletedProcess) -> str:
    """A user mistake: non-zero exit, one `servelab: error:` line on stderr, no traceback."""
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("servelab: error: "), res.stderr
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def empty_store(path: Path) -> Path:
    from store.schema import connect_write

    connect_write(path).close()
    return path


# --- help -------------------------------------------------------------------------------

def test_top_level_help_lists_every_command(cli):
    res = cli("--help")
    assert res.returncode == 0, res.stderr
    for cmd in COMMANDS:
        assert re.search(rf"^[\W_]*{cmd}\s", res.stdout, re.M), f"{cmd} missing:\n{res.stdout}"


def test_console_script_help():
    script = Path(sys.executable).with_name("servelab")
    if not script.exists():
        pytest.skip("the servelab console script is not installed in this environment")
    res = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout


@pytest.mark.parametrize("cmd", COMMANDS)
def test_command_help_has_an_example(cli, cmd):
    res = cli(cmd, "--help")
    assert res.returncode == 0, res.stderr
    assert "Example:" in res.stdout, res.stdout
    assert re.search(r"Example:\s*servelab " + cmd, res.stdout), res.stdout


def test_help_imports_nothing_heavy():
    """Building every command's help through the real entry point loads no heavy package."""
    code = f"""
import sys
from servelab import cli
for argv in [[], *([c] for c in {COMMANDS!r})]:
    sys.argv = ["servelab", *argv, "--help"]
    try:
        cli.main()
    except SystemExit as exc:
        assert exc.code in (0, None), (argv, exc.code)
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    assert "HEAVY=\n" in res.stderr, res.stderr[-500:]
    assert elapsed < 20, f"help took {elapsed:.1f} s"


# --- runs against the built-in server ----------------------------------------------------

@pytest.mark.slow
def test_open_loop_run_json_matches_summary_and_runs(cli, tmp_path):
    store = str(tmp_path / "s.duckdb")
    res = cli("run", *TINY_LOAD, "--rate", "4", "--duration", "3",
              "--slo", "ttft_p99<=2000ms", "--store", store, "--json")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    s = last_json(res.stdout)
    assert isinstance(s, dict)
    assert re.fullmatch(r"r\d{8}-\d{6}-[0-9a-f]{4}", s["run_id"])
    assert s["status"] == "completed"
    assert isinstance(s["requests"], int) and s["requests"] > 0
    assert s["errors"] == 0
    assert s["length_forcing"] is True  # the built-in server accepts ignore_eos/min_tokens
    for key in ("req_s", "output_tok_s", "goodput_req_s"):
        assert isinstance(s[key], float) and s[key] > 0, (key, s[key])
    assert 0 <= s["slo_attainment"] <= 1
    for key in LATENCIES:
        assert set(QUANTILES) <= set(s[key]), (key, s[key])
        for q in QUANTILES:
            assert isinstance(s[key][q], float) and s[key][q] >= 0, (key, q, s[key][q])
        assert s[key]["p50"] <= s[key]["p99"] <= s[key]["p999"]

    again = cli("summary", s["run_id"], "--json", "--store", store)
    assert again.returncode == 0, again.stderr
    assert last_json(again.stdout) == s

    listed = cli("runs", "--json", "--store", store)
    assert listed.returncode == 0, listed.stderr
    rows = last_json(listed.stdout)
    assert [r["run_id"] for r in rows] == [s["run_id"]]
    row = rows[0]
    assert row["status"] == "completed"
    assert row["requests"] == s["requests"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["started_at"])
    # The spool is gone once ingested.
    assert not list(Path(f"{store}.spool").glob("r*/step-*/*.jsonl"))


@pytest.mark.slow
def test_closed_loop_run_via_env_store_prints_tables(cli, tmp_path):
    store = tmp_path / "env-store.duckdb"
    env = {"SERVELAB_STORE": str(store)}
    res = cli("run", *TINY_LOAD, "--users", "2", "--duration", "2", env=env)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "latency (ms)" in res.stdout and "TTFT" in res.stdout, res.stdout
    assert store.is_file(), "SERVELAB_STORE was not honoured"
    assert not (tmp_path / "servelab.duckdb").exists()

    listed = cli("runs", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (row,) = last_json(listed.stdout)
    assert row["status"] == "completed" and row["requests"] > 0
    assert row["mode"] == "closed" and row["users"] == 2

    s = last_json(cli("summary", row["run_id"], "--json", env=env).stdout)
    assert s["requests"] == row["requests"]
    # Closed loop has no schedule: lag is "not applicable" (null), never a fake 0.
    assert s["schedule_lag_ms"] == {q: None for q in s["schedule_lag_ms"]}
    assert set(QUANTILES) <= set(s["schedule_lag_ms"])
    assert s["ttft_ms"]["p50"] is not None

    table = cli("summary", row["run_id"], env=env)
    assert table.returncode == 0, table.stderr
    assert row["run_id"] in table.stdout and "latency (ms)" in table.stdout
    runs_table = cli("runs", env=env)
    assert runs_table.returncode == 0, runs_table.stderr
    assert row["run_id"] in runs_table.stdout


# --- user mistakes -----------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (["run", "--target", "ftp://x"], "bad target URL"),
    (["run", "--target", "http://127.0.0.1:notaport"], "invalid port"),
    (["run", "--slo", "ttft_p99 is fast"], "bad SLO term"),
    (["run", "--slo", "foo_p99<=5ms"], "unknown SLO metric"),
    (["run", "--users", "2", "--rate", "3"], "not both"),
    (["run", "--rate", "-1"], "rate"),
    (["run", "--rate", "0"], "rate"),
])
def test_bad_run_flags_are_one_line_and_record_nothing(cli, tmp_path, args, needle):
    store = tmp_path / "s.duckdb"
    res = cli(*args, "--store", str(store), "--duration", "2")
    assert needle in assert_one_error_line(res)
    assert not store.exists(), "a rejected command must not create a store"


@pytest.mark.parametrize("args", [["runs"], ["runs", "--json"], ["summary", "r1"],
                                  ["summary", "r1", "--json"]])
def test_missing_store(cli, tmp_path, args):
    store = tmp_path / "missing.duckdb"
    line = assert_one_error_line(cli(*args, "--store", str(store)))
    assert "no store" in line
    assert not store.exists()


def test_unknown_run_id(cli, tmp_path):
    store = empty_store(tmp_path / "s.duckdb")
    line = assert_one_error_line(cli("summary", "r20000101-000000-0000", "--store", str(store)))
    assert "no run r20000101-000000-0000" in line


def test_unreachable_target_fails_and_is_stored_failed(cli, tmp_path):
    store = str(tmp_path / "s.duckdb")
    url = f"http://127.0.0.1:{closed_port()}"
    line = assert_one_error_line(cli("run", "--target", url, "--duration", "2", "--store", store))
    assert "cannot reach" in line
    (row,) = last_json(cli("runs", "--json", "--store", store).stdout)
    assert row["status"] == "failed"
    assert row["target"] == url and row["requests"] == 0


def test_unknown_builtin_model_size_is_one_line_before_anything_starts(cli, tmp_path):
    store = tmp_path / "s.duckdb"
    res = cli("run", "--target", "builtin", "--model", "huge", "--duration", "2", "--store", str(store))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "servelab: error: model: unknown model size 'huge': choose tiny, small, base"], res.stderr
    assert not store.exists()  # a flag mistake records nothing


# --- serve -------------------------------------------------------------------------------

def start_serve(cli, tmp_path: Path, args: list[str]) -> tuple[subprocess.Popen, str, Path]:
    """`servelab serve --port 0 ARGS` in the background: (process, announced URL, output file)."""
    out_path = tmp_path / "serve.out"
    with open(out_path, "w") as out:
        proc = cli.popen(["serve", "--port", "0", *args], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        m = re.search(r"listening on (http://127\.0\.0\.1:(\d+))\s*$", out_path.read_text(), re.M)
        if m:
            assert int(m.group(2)) != 0
            return proc, m.group(1), out_path
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no address announced: {out_path.read_text()[-1000:]}")


@pytest.mark.slow
def test_serve_port_zero_answers_health_and_stops_on_sigterm(cli, tmp_path):
    proc, url, out_path = start_serve(cli, tmp_path, ["--model", "tiny"])
    with urllib.request.urlopen(url + "/health", timeout=10) as resp:
        assert resp.status == 200
        health = json.loads(resp.read())
    assert health["status"] == "ok" and health["model"] == "tiny"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, out_path.read_text()[-1000:]
    assert "Traceback" not in out_path.read_text()


def test_serve_calib_log_without_calibration_is_one_line(cli, tmp_path):
    line = assert_one_error_line(cli("serve", "--port", "0", "--calib-log", str(tmp_path / "c.jsonl")))
    assert "--calib-log needs --calibration" in line


@pytest.mark.slow
def test_calibrate_against_a_served_calibration_target_with_its_log(cli, tmp_path):
    """The pinned procedure of docs/performance.md: a calibration server started on its own
    (`serve --calibration --calib-log`), measured by `calibrate --target --server-log`."""
    log = tmp_path / "calib.jsonl"
    proc, url, out_path = start_serve(cli, tmp_path, ["--calibration", "--calib-ttft-ms", "20",
                                                      "--calib-itl-ms", "5", "--calib-log", str(log)])
    try:
        res = cli("calibrate", "--target", url, "--server-log", str(log), "--rates", "10", "--duration", "2",
                  "--ttft-ms", "20", "--itl-ms", "5", "--chunks", "8", "--store", str(tmp_path / "cal.duckdb"),
                  "--json")
        assert res.returncode == 0, res.stderr
        row = last_json(res.stdout)["rows"][0]
        assert row["ok"] == row["requests"] == row["matched"] >= 19
        assert row["ttft_err_p50_ms"] is not None and abs(row["ttft_err_p50_ms"]) < 5
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert len(log.read_text().splitlines()) >= row["ok"]
