"""The real NVML path; these run only where NVML sees a GPU (`-m gpu`), else skip with a reason.

On a GPU machine: `python -m pytest -q -m gpu tests/test_profilers_gpu.py`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from profilers.device import GPU_FIELDS, DeviceError, NoGpuError, open_devices

pytestmark = pytest.mark.gpu


def _gpus() -> list:
    try:
        return open_devices("auto", pid=os.getpid())
    except NoGpuError as exc:
        pytest.skip(f"needs an NVIDIA GPU with NVML: {exc}")
    except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
        pytest.skip(f"needs nvidia-ml-py: {exc}")


def test_real_device_reads_plausible_values():
    dev = _gpus()[0]
    assert dev.source == "nvml"
    row = dev.read()
    assert set(row) == set(GPU_FIELDS)
    assert row["power_w"] is None or 5 < row["power_w"] < 2000
    assert row["mem_total_bytes"] is None or row["mem_total_bytes"] > 1 << 30
    assert row["gpu_util_pct"] is None or 0 <= row["gpu_util_pct"] <= 100


def test_energy_counter_rises_over_a_second():
    dev = _gpus()[0]
    dev.energy_period_s = 0.0
    first = dev.read()["energy_j"]
    time.sleep(1.2)
    second = dev.read()["energy_j"]
    if first is None:
        pytest.skip("this GPU does not report the total-energy counter")
    assert second > first


def test_unknown_index_is_one_line():
    n = len(_gpus())
    with pytest.raises(DeviceError, match=f"unknown GPU index {n + 7}"):
        open_devices("auto", [n + 7])


def test_sampler_process_writes_nvml_rows(tmp_path):
    _gpus()
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"spool_dir": str(tmp_path / "sp"), "gpu": "auto", "gpu_hz": 10}))
    proc = subprocess.Popen([sys.executable, "-m", "profilers", "--spec", str(spec)], stdout=subprocess.PIPE)
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    rows = [json.loads(x) for x in (tmp_path / "sp" / "samples-gpu.jsonl").read_text().splitlines()]
    assert len(rows) >= 15 and {r["source"] for r in rows} == {"nvml"}
    assert sum(r["energy_j"] is not None for r in rows) >= 2  # the counter is read once a second


def test_builtin_server_on_cuda_under_load_gives_real_energy_and_cuda_operators(tmp_path):
    """The whole real path: the server on cuda, NVML sampling, the torch window with CUDA time."""
    _gpus()
    import torch

    from servelab.config import LoadConfig, RunConfig, SamplerConfig, ServerConfig
    from servelab.results import run_summary
    from servelab.runner import execute_run

    if not torch.cuda.is_available():
        pytest.skip("NVML sees a GPU but this torch build has no CUDA")
    store = str(tmp_path / "s.duckdb")
    cfg = RunConfig(target="builtin",
                    server=ServerConfig(model="small", device="cuda", precision="bf16", batching="continuous",
                                        max_batch_size=8),
                    load=LoadConfig(users=8, duration_s=12.0, max_tokens=64, prompt_tokens=128),
                    profile=SamplerConfig(gpu="auto", torch_profile_s=2.0))
    summary = run_summary(store, execute_run(cfg, store))
    hw = summary["hardware"]
    assert summary["errors"] == 0 and hw["sample_source"] == "nvml"
    assert hw["power_w_mean"] > 0 and hw["mem_used_bytes_peak"] > 0
    if hw["energy_j"] is not None:  # GPUs without the energy counter leave it null
        assert hw["j_per_output_token"] > 0
    assert any((op["self_cuda_us"] or 0) > 0 for op in summary["operators"])
