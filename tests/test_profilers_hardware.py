"""analysis/hardware.py: per-step and run-level hardware figures from sample rows."""

from __future__ import annotations

import pytest

from analysis.hardware import hardware_figures, run_hardware
from analysis.summary import summarize_run

S = 1_000_000_000


def gpu(t_s: float, device="0", power=300.0, energy=None, util=50.0, mem=1 << 30, source="simulated"):
    return {"role": "gpu", "device": device, "source": source, "t_ns": int(t_s * S), "power_w": power,
            "energy_j": energy, "gpu_util_pct": util, "mem_used_bytes": mem}


def host(t_s: float, role: str, cpu: float):
    return {"role": role, "source": "psutil", "t_ns": int(t_s * S), "cpu_pct": cpu}


def test_energy_is_a_counter_delta_over_the_window_not_integrated_power():
    rows = [gpu(0.5, energy=0.0), gpu(1.0, energy=100.0, power=200), gpu(2.0, power=400),
            gpu(3.0, energy=1000.0, power=600, mem=2 << 30), gpu(9.0, energy=5000.0)]
    h = hardware_figures(rows, (1 * S, 3 * S), output_tokens=450)
    assert h["energy_j"] == 900.0  # 1000 - 100: rows outside [1 s, 3 s] are ignored
    assert h["j_per_output_token"] == 2.0 and h["tokens_per_joule"] == 0.5
    assert h["power_w_mean"] == 400.0 and h["power_w_peak"] == 600.0
    assert h["gpu_s_per_1m_tokens"] == pytest.approx(1 * 2.0 / 450 * 1e6)
    assert h["mem_used_bytes_peak"] == 2 << 30 and h["gpu_util_pct_mean"] == 50.0
    assert h["sample_source"] == "simulated" and h["gpus"] == 1


def test_energy_needs_readings_at_least_one_second_apart():
    rows = [gpu(1.0, energy=10.0), gpu(1.5, energy=60.0)]
    h = hardware_figures(rows, (1 * S, 2 * S), output_tokens=10)
    assert h["energy_j"] is None and h["j_per_output_token"] is None and h["tokens_per_joule"] is None
    assert h["power_w_mean"] == 300.0  # power is still reported


def test_two_gpus_add_power_and_energy():
    rows = [gpu(0, "0", 100, 0.0), gpu(2, "0", 100, 200.0), gpu(0, "1", 300, 0.0), gpu(2, "1", 300, 600.0)]
    h = hardware_figures(rows, (0, 2 * S), output_tokens=80)
    assert h["gpus"] == 2 and h["power_w_mean"] == 400.0 and h["energy_j"] == 800.0
    assert h["gpu_s_per_1m_tokens"] == pytest.approx(2 * 2.0 / 80 * 1e6)


def test_host_only_samples_give_cpu_per_role_and_no_gpu_figures():
    rows = [host(1, "server", 90.0), host(2, "server", 100.0), host(1, "loadgen", 20.0), host(1, "host", 55.0)]
    h = hardware_figures(rows, (0, 3 * S), output_tokens=100)
    assert h["cpu_pct_mean"] == {"host": 55.0, "loadgen": 20.0, "server": 95.0}
    assert h["sample_source"] is None and h["gpus"] == 0
    assert h["power_w_mean"] is None and h["energy_j"] is None and h["gpu_s_per_1m_tokens"] is None


def test_no_samples_is_none():
    assert hardware_figures([], (0, S), 10) is None
    assert hardware_figures([gpu(5.0)], (0, S), 10) is None  # none inside the window
    assert run_hardware([(None, 1.0, 10.0)]) is None


def test_run_level_adds_energy_and_weights_means_by_window():
    a = hardware_figures([gpu(0, power=100, energy=0.0), gpu(1, power=100, energy=100.0)], (0, S), 100)
    b = hardware_figures([gpu(0, power=400, energy=0.0), gpu(3, power=400, energy=1200.0)], (0, 3 * S), 300)
    run = run_hardware([(a, 1.0, 100), (b, 3.0, 300)])
    assert run["energy_j"] == 1300.0 and run["j_per_output_token"] == pytest.approx(1300 / 400)
    assert run["power_w_mean"] == pytest.approx((100 * 1 + 400 * 3) / 4) and run["power_w_peak"] == 400
    assert run["gpu_s_per_1m_tokens"] == pytest.approx(4.0 / 400 * 1e6)


def _request(i: int, t_send_s: float) -> dict:
    t = int(t_send_s * S)
    return {"req_id": f"r{i}", "step": 0, "status": "ok", "t_send_ns": t, "t_first_ns": t + S // 10,
            "t_last_ns": t + S // 2, "chunk_ns": [t + S // 10, t + S // 2], "output_tokens": 10,
            "output_tokens_client": 2, "prompt_tokens": 5}


def test_summary_has_hardware_per_step_and_run_or_none_without_samples():
    step = {"step": 0, "mode": "closed", "users": 1, "t_start_ns": 0, "t_end_ns": 10 * S,
            "warmup_s": 0.0, "duration_s": 10.0, "status": "completed"}
    reqs = [_request(i, i + 0.1) for i in range(10)]
    samples = [{**gpu(t, energy=100.0 * t), "step": 0} for t in range(11)]
    s = summarize_run({"run_id": "r"}, [step], reqs, "", samples)
    hw = s["steps"][0]["hardware"]
    assert hw["energy_j"] > 0 and hw["j_per_output_token"] == pytest.approx(hw["energy_j"] / (
        s["steps"][0]["output_tok_s"] * s["steps"][0]["window_s"]))
    assert s["hardware"]["energy_j"] == hw["energy_j"]
    none = summarize_run({"run_id": "r"}, [step], reqs, "")
    assert none["hardware"] is None and none["steps"][0]["hardware"] is None
