"""The device interface: NVML fields degrade to None, auto-detection never simulates silently."""

from __future__ import annotations

import types

import pytest

from profilers.device import (
    GPU_FIELDS, DeviceError, NoGpuError, NvmlDevice, SimulatedDevice, open_devices,
)


class NVMLError_NotSupported(Exception):  # noqa: N801 - named like pynvml's class
    pass


def fake_nvml(count: int = 1, fail: set[str] = frozenset(), init_error: Exception | None = None):
    """A module-like object with pynvml's names; calls named in `fail` raise NotSupported."""
    calls: dict[str, int] = {}

    def fn(name, value):
        def call(*args):
            calls[name] = calls.get(name, 0) + 1
            if name in fail:
                raise NVMLError_NotSupported("Not Supported")
            return value(*args) if callable(value) else value
        return call

    def init():
        if init_error:
            raise init_error

    proc = types.SimpleNamespace(pid=4242, usedGpuMemory=3 << 30)
    m = types.SimpleNamespace(
        NVML_CLOCK_SM=1, NVML_CLOCK_MEM=2, NVML_TEMPERATURE_GPU=0, calls=calls,
        nvmlInit=init, nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda i: f"h{i}",
        nvmlDeviceGetPowerUsage=fn("power", 312_500),  # mW
        nvmlDeviceGetTotalEnergyConsumption=fn("energy", 9_876_543),  # mJ
        nvmlDeviceGetUtilizationRates=fn("util", types.SimpleNamespace(gpu=87, memory=41)),
        nvmlDeviceGetMemoryInfo=fn("mem", types.SimpleNamespace(used=10 << 30, total=80 << 30)),
        nvmlDeviceGetClockInfo=fn("clock", lambda h, kind: 1980 if kind == 1 else 2619),
        nvmlDeviceGetTemperature=fn("temp", 61),
        nvmlDeviceGetCurrentClocksThrottleReasons=fn("throttle", 4),
        nvmlDeviceGetComputeRunningProcesses=fn("procs", [proc]),
    )
    return m


def test_nvml_device_reads_every_field_with_units():
    row = NvmlDevice(fake_nvml(), 0, pid=4242).read()
    assert set(row) == set(GPU_FIELDS)
    assert row["power_w"] == 312.5 and row["energy_j"] == pytest.approx(9876.543)
    assert (row["gpu_util_pct"], row["mem_util_pct"]) == (87.0, 41.0)
    assert (row["mem_used_bytes"], row["mem_total_bytes"]) == (10 << 30, 80 << 30)
    assert (row["sm_clock_mhz"], row["mem_clock_mhz"], row["temp_c"]) == (1980.0, 2619.0, 61.0)
    assert row["throttle_reasons"] == 4 and row["proc_gpu_mem_bytes"] == 3 << 30


def test_each_unsupported_field_becomes_none_and_is_not_asked_again():
    nvml = fake_nvml(fail={"energy", "util", "temp", "procs"})
    dev = NvmlDevice(nvml, 0, pid=4242, energy_period_s=0.0)
    first, second = dev.read(), dev.read()
    for row in (first, second):
        assert row["energy_j"] is None and row["gpu_util_pct"] is None and row["mem_util_pct"] is None
        assert row["temp_c"] is None and row["proc_gpu_mem_bytes"] is None
        assert row["power_w"] == 312.5 and row["mem_used_bytes"] == 10 << 30  # the rest still read
    assert nvml.calls["energy"] == 1 and nvml.calls["temp"] == 1  # not retried once unsupported


def test_energy_counter_is_read_at_most_once_per_period():
    nvml = fake_nvml()
    dev = NvmlDevice(nvml, 0, energy_period_s=60.0)
    rows = [dev.read() for _ in range(5)]
    assert rows[0]["energy_j"] is not None and all(r["energy_j"] is None for r in rows[1:])
    assert nvml.calls["energy"] == 1  # ~4 ms a read on an H100: not at 10 Hz


def test_process_memory_of_another_pid_is_none():
    assert NvmlDevice(fake_nvml(), 0, pid=1).read()["proc_gpu_mem_bytes"] is None


def test_auto_picks_nvml_when_it_has_devices_even_if_simulation_is_allowed():
    devs = open_devices("auto", allow_simulated=True, nvml=fake_nvml(count=2))
    assert [d.source for d in devs] == ["nvml", "nvml"] and [d.device for d in devs] == ["0", "1"]


def test_auto_without_a_gpu_raises_one_line_unless_simulation_is_allowed():
    broken = fake_nvml(init_error=RuntimeError("NVML Shared Library Not Found"))
    with pytest.raises(NoGpuError, match="^no NVIDIA GPU: GPU sampling off"):
        open_devices("auto", nvml=broken)
    with pytest.raises(NoGpuError, match="sees no device"):
        open_devices("auto", nvml=fake_nvml(count=0))
    assert [d.source for d in open_devices("auto", allow_simulated=True, nvml=broken)] == ["simulated"]


def test_unknown_device_index_is_a_clear_error_never_a_simulated_fallback():
    with pytest.raises(DeviceError, match=r"unknown GPU index 3: this machine has 2 \(0\.\.1\)") as e:
        open_devices("auto", [0, 3], allow_simulated=True, nvml=fake_nvml(count=2))
    assert not isinstance(e.value, NoGpuError) and "\n" not in str(e.value)


def test_off_and_explicit_simulated():
    assert open_devices("off", nvml=fake_nvml()) == []
    devs = open_devices("simulated", [0, 1], nvml=fake_nvml())
    assert [(d.source, d.device) for d in devs] == [("simulated", "0"), ("simulated", "1")]
    with pytest.raises(DeviceError, match="unknown GPU sampler kind"):
        open_devices("tpu")


def test_simulated_device_is_deterministic_and_tracks_load():
    idle = SimulatedDevice(0, seed=7, load=lambda: 0.0).read()
    busy = SimulatedDevice(0, seed=7, load=lambda: 1.0).read()
    again = SimulatedDevice(0, seed=7, load=lambda: 1.0).read()
    assert set(busy) == set(GPU_FIELDS)
    assert busy["power_w"] == again["power_w"] and busy["gpu_util_pct"] == 100.0
    assert busy["power_w"] > 600 > 100 > idle["power_w"]
    assert busy["mem_used_bytes"] > idle["mem_used_bytes"]


def test_nvml_count_is_zero_when_nvml_fails():
    from profilers.device import nvml_count

    assert nvml_count(fake_nvml(count=3)) == 3
    assert nvml_count(fake_nvml(init_error=RuntimeError("no driver"))) == 0
