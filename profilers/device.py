"""The GPU device interface: the real NVML reader, a simulated one, and choosing between them.

A `Device` has a `source` ("nvml" or "simulated"), a `device` label, and `read() -> dict`
returning the GPU columns of the `samples` table (docs/architecture.md); units are in the
names. Every field is read on its own and an unsupported or failing one becomes None,
never an exception (STYLE.md lesson 11).

Hardware facts (H100, driver 580) this respects: power and the energy counter refresh about
every 100 ms, so reading faster than ~10 Hz repeats values; the energy counter costs ~4 ms
a read (so it is read at most once per `energy_period_s`, default 1 s: energy per token
comes from counter deltas over >= 1 s anyway), utilisation ~0.4 ms, power/clocks ~3 us.
PCIe throughput (~21 ms a read) is not sampled.

`open_devices` never falls back to the simulated device silently: `kind="auto"` picks NVML
when it initialises and has devices; otherwise it raises `NoGpuError` unless the caller
explicitly allows simulation.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

GPU_FIELDS = ("power_w", "energy_j", "gpu_util_pct", "mem_util_pct", "mem_used_bytes",
              "mem_total_bytes", "sm_clock_mhz", "mem_clock_mhz", "temp_c", "throttle_reasons",
              "proc_gpu_mem_bytes")


class DeviceError(Exception):
    """A device problem worth one line (unknown index, NVML failing)."""


class NoGpuError(DeviceError):
    """NVML is absent or sees no device (and simulation was not asked for)."""


class Device(Protocol):
    source: str
    device: str

    def read(self) -> dict[str, Any]: ...


def _mb(x: Any) -> int | None:
    return None if x is None else int(x)


class NvmlDevice:
    """One GPU read through pynvml (`nvml` may be a fake module object in tests)."""

    source = "nvml"

    def __init__(self, nvml: Any, index: int, pid: int | None = None, energy_period_s: float = 1.0):
        self.nvml = nvml
        self.index = index
        self.device = str(index)
        self.pid = pid
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self.energy_period_s = energy_period_s
        self._energy_at = -math.inf
        self._unsupported: set[str] = set()

    def _get(self, name: str, fn: Callable[[], Any]) -> Any:
        """fn() or None; a field NVML calls "not supported" is never asked again."""
        if name in self._unsupported:
            return None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - pynvml raises many NVMLError subclasses
            if "NotSupported" in type(exc).__name__ or "Not Supported" in str(exc):
                self._unsupported.add(name)
            return None

    def _energy_j(self) -> float | None:
        now = time.monotonic()
        if now - self._energy_at < self.energy_period_s:
            return None
        self._energy_at = now
        mj = self._get("energy_j", lambda: self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))
        return None if mj is None else mj / 1000.0  # the counter is in mJ since driver load

    def _proc_mem(self) -> int | None:
        if self.pid is None:
            return None
        procs = self._get("proc_gpu_mem_bytes",
                          lambda: self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)) or []
        used = [p.usedGpuMemory for p in procs if getattr(p, "pid", None) == self.pid]
        return _mb(used[0]) if used and used[0] is not None else None

    def read(self) -> dict[str, Any]:
        n, h = self.nvml, self.handle
        util = self._get("util", lambda: n.nvmlDeviceGetUtilizationRates(h))
        mem = self._get("mem", lambda: n.nvmlDeviceGetMemoryInfo(h))
        power_mw = self._get("power_w", lambda: n.nvmlDeviceGetPowerUsage(h))
        throttle = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            n, "nvmlDeviceGetCurrentClocksThrottleReasons", None)
        return {
            "power_w": None if power_mw is None else power_mw / 1000.0,
            "energy_j": self._energy_j(),
            "gpu_util_pct": None if util is None else float(util.gpu),
            "mem_util_pct": None if util is None else float(util.memory),
            "mem_used_bytes": None if mem is None else _mb(mem.used),
            "mem_total_bytes": None if mem is None else _mb(mem.total),
            "sm_clock_mhz": self._get("sm_clock_mhz", lambda: float(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM))),
            "mem_clock_mhz": self._get("mem_clock_mhz", lambda: float(n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM))),
            "temp_c": self._get("temp_c", lambda: float(n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU))),
            "throttle_reasons": self._get("throttle_reasons", lambda: int(throttle(h)) if throttle else None),
            "proc_gpu_mem_bytes": self._proc_mem(),
        }


class SimulatedDevice:
    """A plausible, deterministic GPU for CPU-only machines and tests (source "simulated").

    Formula: util = 100 * load(); power_w = idle_w + (tdp_w - idle_w) * load + noise (seeded);
    energy_j integrates power over real elapsed time in 100 ms quanta, like NVML's counter.
    """

    source = "simulated"

    def __init__(self, index: int = 0, seed: int = 0, load: Callable[[], float] | None = None,
                 idle_w: float = 70.0, tdp_w: float = 700.0, mem_total_bytes: int = 80 << 30):
        self.index, self.device = index, str(index)
        self._rng = random.Random(seed * 1000 + index)
        self._load = load or (lambda: 0.5)
        self.idle_w, self.tdp_w, self.mem_total_bytes = idle_w, tdp_w, mem_total_bytes
        self._t0 = self._last = time.monotonic()
        self._energy_j = 0.0

    def read(self) -> dict[str, Any]:
        load = min(max(float(self._load()), 0.0), 1.0)
        power = self.idle_w + (self.tdp_w - self.idle_w) * load + self._rng.uniform(-5, 5)
        now = time.monotonic()
        if now - self._last >= 0.1:  # the real counter moves in ~100 ms steps
            self._energy_j += power * (now - self._last)
            self._last = now
        used = int(self.mem_total_bytes * (0.3 + 0.2 * load))
        return {
            "power_w": round(power, 3), "energy_j": round(self._energy_j, 3),
            "gpu_util_pct": round(100.0 * load, 2), "mem_util_pct": round(60.0 * load, 2),
            "mem_used_bytes": used, "mem_total_bytes": self.mem_total_bytes,
            "sm_clock_mhz": 1980.0 - 200.0 * load, "mem_clock_mhz": 2619.0,
            "temp_c": round(35.0 + 40.0 * load, 2), "throttle_reasons": 0,
            "proc_gpu_mem_bytes": int(used * 0.9),
        }


def _nvml_module() -> Any:
    import pynvml  # nvidia-ml-py; only this package imports it

    return pynvml


def nvml_count(nvml: Any = None) -> int:
    """How many GPUs NVML sees (0 when it is absent or fails)."""
    try:
        module = nvml if nvml is not None else _nvml_module()
        module.nvmlInit()
        return int(module.nvmlDeviceGetCount())
    except Exception:  # noqa: BLE001 - absent library, no driver: no GPU
        return 0


def gpu_names(nvml: Any = None) -> list[str]:
    """The names of the GPUs NVML sees, in index order ([] when it is absent or fails)."""
    try:
        module = nvml if nvml is not None else _nvml_module()
        module.nvmlInit()
        names = [module.nvmlDeviceGetName(module.nvmlDeviceGetHandleByIndex(i))
                 for i in range(module.nvmlDeviceGetCount())]
    except Exception:  # noqa: BLE001 - absent library, no driver: no GPU
        return []
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def nvml_devices(nvml: Any, indices: list[int] | None, pid: int | None) -> list[NvmlDevice]:
    """NvmlDevice per index (all when None); NoGpuError / DeviceError with one line."""
    try:
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
    except Exception as exc:  # noqa: BLE001 - no driver, no library, no permission
        raise NoGpuError(f"no NVIDIA GPU: GPU sampling off ({str(exc).strip() or type(exc).__name__})") from None
    if count == 0:
        raise NoGpuError("no NVIDIA GPU: GPU sampling off (NVML sees no device)")
    wanted = list(range(count)) if indices is None else list(indices)
    bad = [i for i in wanted if not 0 <= i < count]
    if bad:
        raise DeviceError(f"unknown GPU index {bad[0]}: this machine has {count} (0..{count - 1});"
                          " GPU sampling off")
    return [NvmlDevice(nvml, i, pid) for i in wanted]


def open_devices(kind: str = "auto", indices: list[int] | None = None, *, allow_simulated: bool = False,
                 pid: int | None = None, seed: int = 0, load: Callable[[], float] | None = None,
                 nvml: Any = None) -> list[Device]:
    """The devices to sample. kind: "auto" (NVML, else NoGpuError unless allow_simulated),
    "nvml", "simulated" (explicit), or "off" (none)."""
    if kind == "off":
        return []
    if kind == "simulated":
        return [SimulatedDevice(i, seed, load) for i in (indices or [0])]
    if kind not in ("auto", "nvml"):
        raise DeviceError(f"unknown GPU sampler kind {kind!r}: expected auto, nvml, simulated or off")
    try:
        module = nvml if nvml is not None else _nvml_module()
    except ImportError:
        if kind == "auto" and allow_simulated:
            return [SimulatedDevice(i, seed, load) for i in (indices or [0])]
        raise NoGpuError("no NVIDIA GPU: GPU sampling off (nvidia-ml-py is not installed)") from None
    try:
        return [*nvml_devices(module, indices, pid)]
    except NoGpuError:
        if kind == "auto" and allow_simulated:
            return [SimulatedDevice(i, seed, load) for i in (indices or [0])]
        raise
