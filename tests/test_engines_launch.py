"""Engines launched per run and per sweep setup (servelab/engines.py), with real processes.

The engine here is `--engine command`: the built-in server in calibration mode, started by
its own command line like any third-party server (it answers /health and /v1/models, and
exposes Prometheus /metrics). The real vLLM and `transformers serve` are in
tests/test_engines_real.py. Engines run in a session of their own, so the `cli` fixture's
session check cannot see them: each test that needs it finds the engine by a pid file.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from conftest import gone
from servelab.engines import COMMANDS, command_line, flag_value, redacted_args
from servelab.errors import UserError

pytestmark = pytest.mark.slow

PY = sys.executable
# The built-in server as a third-party engine: `sh -c` writes its pid, then becomes it.
SERVE = "sh -c 'echo $$ > {pidfile}; exec {bin}servelab serve --calibration --calib-ttft-ms 5 --port {port}'"
LOAD = ["--users", "2", "--max-tokens", "8", "--prompt-tokens", "8"]


def engine_args(tmp_path: Path) -> str:
    return SERVE.replace("{pidfile}", str(tmp_path / "engine.pid"))


def test_the_command_table_and_args():
    argv = command_line("vllm", "--model /m --dtype float32", "/envs/v/bin/python", 8123)
    assert argv == ["/envs/v/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1",
                    "--port", "8123", "--model", "/m", "--dtype", "float32"]
    assert command_line("transformers", "/m", "/envs/t/bin/python", 9)[:2] == ["/envs/t/bin/transformers", "serve"]
    assert command_line("llamacpp", "-m x.gguf", None, 9)[0] == "llama-server"
    assert set(COMMANDS) == {"vllm", "sglang", "llamacpp", "tgi", "transformers", "command"}
    assert command_line("command", "srv --listen {port}", None, 77) == ["srv", "--listen", "77"]
    with pytest.raises(UserError, match=r"\{port\} placeholder"):
        command_line("command", "srv --listen 80", None, 77)
    assert redacted_args("--model m --api-key sk-123 --token=abc") == "--model m --api-key '***' '--token=***'"
    assert flag_value("--dtype=bfloat16 --model /m", ("--model",)) == "/m"


def test_a_run_on_a_launched_engine_records_its_setup_and_metrics(cli, tmp_path):
    r = cli("run", "--engine", "command", "--engine-python", PY, "--engine-args", engine_args(tmp_path),
            *LOAD, "--duration", "3", "--store", "s.duckdb", "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "completed" and out["requests"] > 0 and out["errors"] == 0
    assert "starting the command engine on port" in r.stderr
    pid = int((tmp_path / "engine.pid").read_text())
    assert gone(pid, 20), "the engine outlived its run"
    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
        engine, model, hardware, target = con.execute(
            "SELECT engine, model, hardware, target FROM runs").fetchone()
        scraped = con.execute("SELECT count(DISTINCT t_ns), count(*) FROM engine_samples").fetchone()
    assert engine == "command" and target.startswith("http://127.0.0.1:")
    assert model and str(os.cpu_count()) in hardware
    assert scraped[0] >= 2 and scraped[1] > scraped[0]  # several series, scraped about once a second
    assert out["setup"]["engine"] == "command" and out["engine_metrics"]


def test_an_engine_that_exits_is_one_line_then_its_log_tail(cli, tmp_path):
    args = f"{PY} -c \"print('loading'); print('no such model: /nowhere'); raise SystemExit(3)\" {{port}}"
    r = cli("run", "--engine", "command", "--engine-args", args, *LOAD, "--duration", "2",
            "--store", "s.duckdb", timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    first = next(ln for ln in lines if ln.startswith("servelab: error:"))
    assert first == ("servelab: error: the command engine exited (code 3) before it was ready: "
                     "no such model: /nowhere")
    assert "last lines of its log" in r.stderr and "  loading" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_engine_never_ready_times_out_and_is_stopped(cli, tmp_path):
    pidfile = tmp_path / "engine.pid"
    args = (f"{PY} -c \"import os, time; open('{pidfile}', 'w').write(str(os.getpid())); "
            f"print('warming up', flush=True); time.sleep(120)\" {{port}}")
    r = cli("run", "--engine", "command", "--engine-args", args, "--engine-ready-timeout", "3", *LOAD,
            "--duration", "2", "--store", "s.duckdb", timeout=60)
    assert r.returncode == 2
    assert "servelab: error: the command engine was not ready within 3 s (--engine-ready-timeout): warming up" \
        in r.stderr
    assert gone(int(pidfile.read_text()), 20)


# An engine that forks its server (as vLLM forks its engine core): `sh` stays the leader.
FORKING = "sh -c '{bin}servelab serve --calibration --port {port} & echo $! > {pidfile}; wait'"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killing_servelab_stops_its_engine(cli, tmp_path, sig):
    """kill -9 (the guard's PR_SET_PDEATHSIG) and Ctrl-C (the teardown) both stop the engine,
    its forked child included (the guard signals the engine's whole process group)."""
    err = open(tmp_path / "cli.err", "w")
    args = FORKING.replace("{pidfile}", str(tmp_path / "engine.pid"))
    with err:
        proc = cli.popen(["run", "--engine", "command", "--engine-python", PY, "--engine-args",
                          args, *LOAD, "--duration", "60", "--store", "s.duckdb"],
                         stdout=err, stderr=err)
    deadline = time.monotonic() + 60  # until the load is on: its first spooled requests
    while not list(tmp_path.glob("s.duckdb.spool/*/step-0/requests-*.jsonl")):
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "cli.err").read_text()
        time.sleep(0.2)
    pid = int((tmp_path / "engine.pid").read_text())
    assert psutil.pid_exists(pid)
    os.kill(proc.pid, sig)
    proc.wait(90)  # 7 s on a quiet machine; a machine busy with other suites took over 30
    assert gone(pid, 30), f"engine {pid} outlived servelab ({sig.name})"


def test_a_sweep_starts_an_engine_setup_once_for_all_its_points(cli, tmp_path):
    spec = {"name": "eng", "slo": "ttft_p99<=500ms", "duration_s": 2, "drain_s": 2, "repeats": 1,
            "search": {"kind": "grid", "rates": [2, 4]}, "workload": {"max_tokens": 8, "prompt_tokens": 8},
            "setups": {"cal": {"engine": "command", "args": engine_args(tmp_path), "python": PY}}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    r = cli("sweep", "spec.json", "--store", "s.duckdb", "--json", timeout=180)
    assert r.returncode == 0, r.stderr
    (setup,) = json.loads(r.stdout)["setups"]
    assert setup["kind"] == "engine" and setup["engine"] == "command"
    assert [p["rate"] for p in setup["points"]] == [2, 4]
    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT DISTINCT target, engine, setup FROM runs").fetchall()
    assert len(rows) == 1 and rows[0][1:] == ("command", "cal")  # one engine, one URL, both points
    assert r.stderr.count("starting the command engine") == 1


@pytest.mark.parametrize("args, message", [
    (["--engine", "vllm", "--target", "http://127.0.0.1:9"], "give either --target URL"),
    (["--engine-args", "--model m"], "--engine-args and --engine-python need --engine"),
    (["--engine", "command", "--engine-args", "srv --port 80"], "{port} placeholder"),
    (["--engine", "vllm", "--batching", "continuous"], "--batching configures the built-in server; "
                                                       "it has no effect on --engine vllm"),
])
def test_engine_flag_mistakes_are_one_line(cli, args, message):
    r = cli("run", *args, "--duration", "1", "--store", "s.duckdb", timeout=60)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
