"""The torch-profiler window: the server endpoint (tiny model), and a whole run using it."""

from __future__ import annotations

import json

import httpx
import pytest

from servelab.config import LoadConfig, RunConfig, SamplerConfig, ServerConfig
from servelab.results import run_summary
from servelab.runner import execute_run
from serving.launch import launch
from store import profiles

pytestmark = pytest.mark.slow

TINY = ServerConfig(model="tiny", seed=1)


def test_profiler_endpoint_returns_operators_and_writes_a_trace(tmp_path):
    with launch(TINY, timeout_s=60) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        idle = c.post("/v1/profiler/stop")
        assert idle.status_code == 409 and idle.json()["error"]["code"] == "profiler_idle"
        started = c.post("/v1/profiler/start", json={"dir": str(tmp_path), "name": "../../t.json"})
        assert started.status_code == 200 and started.json()["trace_path"] == str(tmp_path / "t.json")
        assert c.post("/v1/profiler/start").status_code == 409  # one window at a time
        assert c.post("/v1/completions", json={"prompt": "hi", "max_tokens": 8}).status_code == 200
        out = c.post("/v1/profiler/stop").json()
    assert out["window_s"] > 0 and out["trace_path"] == str(tmp_path / "t.json")
    trace = json.loads((tmp_path / "t.json").read_text())
    assert trace["traceEvents"]
    ops = out["operators"]
    # The engine runs in its own thread: its matmuls must be in the profile.
    assert any(op["name"] == "aten::mm" for op in ops) and all(op["calls"] >= 1 for op in ops)
    assert ops == sorted(ops, key=lambda o: (o["self_cuda_us"], o["self_cpu_us"]), reverse=True)


def test_a_deferred_stop_returns_at_once_and_the_result_comes_later(tmp_path):
    with launch(TINY, timeout_s=60) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.post("/v1/profiler/result").json()["error"]["code"] == "profiler_idle"
        c.post("/v1/profiler/start", json={"dir": str(tmp_path), "name": "warm.json"})
        assert c.post("/v1/profiler/stop", json={"discard": True}).json()["status"] == "discarded"
        assert not (tmp_path / "warm.json").exists()
        c.post("/v1/profiler/start", json={"dir": str(tmp_path), "name": "d.json"})
        assert c.post("/v1/completions", json={"prompt": "hi", "max_tokens": 8}).status_code == 200
        stopped = c.post("/v1/profiler/stop", json={"defer": True}).json()
        assert stopped["pending"] is True and "operators" not in stopped and stopped["window_s"] > 0
        assert not (tmp_path / "d.json").exists()  # nothing built yet
        assert c.post("/v1/profiler/stop", content=b"{not json").status_code == 400
        out = c.post("/v1/profiler/result").json()
        assert out["window_s"] == stopped["window_s"] and (tmp_path / "d.json").stat().st_size > 0
        assert any(op["name"] == "aten::mm" for op in out["operators"])
        assert c.post("/v1/profiler/result").status_code == 409  # handed out once
        # A stopped window nobody fetched (an interrupted run) does not block the next one.
        c.post("/v1/profiler/start", json={"dir": str(tmp_path), "name": "abandoned.json"})
        c.post("/v1/profiler/stop", json={"defer": True})
        assert c.post("/v1/profiler/start", json={"dir": str(tmp_path), "name": "next.json"}).status_code == 200
        assert c.post("/v1/profiler/stop", json={"defer": True}).json()["trace_path"].endswith("next.json")


def _run(tmp_path, duration_s: float, profile: SamplerConfig) -> tuple[str, str, list[str]]:
    store = str(tmp_path / "s.duckdb")
    cfg = RunConfig(target="builtin", server=TINY, profile=profile,
                    load=LoadConfig(users=2, duration_s=duration_s, warmup_s=0.5, max_tokens=16,
                                    prompt_tokens=16))
    notes: list[str] = []
    run_id = execute_run(cfg, store, on_progress=lambda m: "note" in m and notes.append(m["note"]))
    return store, run_id, notes


def test_run_with_simulated_gpu_and_torch_window(tmp_path):
    profile = SamplerConfig(gpu="simulated", torch_profile_s=1.0, torch_profile_at_s=1.0)
    store, run_id, notes = _run(tmp_path, 4.0, profile)
    assert any("SIMULATED" in n for n in notes), notes
    ops = profiles.get_operators(store, run_id)
    assert ops and ops[0]["rank"] == 1 and ops[0]["step"] == 0 and ops[0]["window_s"] > 0.5
    assert ops[0]["trace_path"] == str(profiles.trace_path(store, run_id, 0))
    assert profiles.trace_path(store, run_id, 0).stat().st_size > 0
    summary = run_summary(store, run_id)
    hw = summary["steps"][0]["hardware"]
    assert summary["status"] == "completed" and hw["sample_source"] == "simulated"
    assert hw["j_per_output_token"] > 0 and hw["cpu_pct_mean"]["server"] is not None
    # The window is timed from the step's t0, and the requests it slowed are counted.
    (window,) = summary["profiler_windows"]
    assert 0.9 < window["start_s"] < 1.5 and window["end_s"] > window["start_s"] + 0.9
    assert window["requests_in_window"] >= 1
    assert summary["operators"][0]["name"] == ops[0]["name"] and len(summary["operators"]) <= 10
    assert hw["cpu_pct_mean"]["loadgen"] is not None


def test_window_longer_than_the_step_is_one_notice_and_the_run_goes_on(tmp_path):
    profile = SamplerConfig(gpu="off", torch_profile_s=5.0, torch_profile_at_s=0.5)
    store, run_id, notes = _run(tmp_path, 2.0, profile)
    assert [n for n in notes if "torch-profiler window" in n] == [
        "torch-profiler window (5 s at 0.5 s) is longer than the step (2 s): no torch profile for this step"]
    assert profiles.get_operators(store, run_id) == []
    summary = run_summary(store, run_id)
    assert summary["status"] == "completed" and summary["measured_requests"] > 0
    hw = summary["steps"][0]["hardware"]
    assert hw["gpus"] == 0 and hw["sample_source"] is None and hw["cpu_pct_mean"]["server"] is not None
