"""The sampler process: `python -m profilers --spec SPEC.json`.

Writes `samples-gpu.jsonl` and `samples-host.jsonl` into the spec's `spool_dir`, one JSON
line per sample row (keys = `samples` columns, `t_ns = time.perf_counter_ns()` on the same
clock as the requests, `wall_ns = time.time_ns()`), each line handed to the kernel with
one `os.write` on an O_APPEND file, so a kill loses at most the line being written.
GPU rows are read at `gpu_hz` (default 10: NVML refreshes power every ~100 ms), host rows
at `host_hz` (default 2), each in its own thread, until SIGTERM/SIGINT or the parent dies.

Spec keys: spool_dir, gpu ("auto" | "nvml" | "simulated" | "off"), gpu_hz, host_hz,
host (bool), device_indices (list or null), pids ({"server": pid, "loadgen": pid}), seed.
On start it prints notices as `{"note": "..."}` lines, then one `{"event": "ready", ...}`
line on stdout; a device problem is a notice and the host sampler still runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from profilers.device import DeviceError, nvml_count, open_devices
from profilers.host import HostSampler
from servelab.spoolfile import LineWriter, samples_file


def _stamp() -> dict[str, int]:
    return {"t_ns": time.perf_counter_ns(), "wall_ns": time.time_ns()}


def _load_of(pid: int | None) -> Callable[[], float]:
    """The simulated GPU's load: the server process's CPU share of one core (0.5 if unknown)."""
    try:
        proc = psutil.Process(int(pid)) if pid else None
        proc and proc.cpu_percent(None)
    except (psutil.Error, ValueError):
        proc = None

    def load() -> float:
        try:
            return min(proc.cpu_percent(None) / 100.0, 1.0) if proc else 0.5
        except psutil.Error:
            return 0.0
    return load


def gpu_reader(spec: dict[str, Any], notes: list[str]) -> Callable[[], list[dict]] | None:
    """A function returning one row per GPU, or None (with a notice) when there is none."""
    kind = spec.get("gpu", "auto")
    server = (spec.get("pids") or {}).get("server")
    try:
        devices = open_devices(kind, spec.get("device_indices"), pid=server, seed=spec.get("seed", 0),
                               load=_load_of(server))
    except DeviceError as exc:
        notes.append(str(exc))
        return None
    if not devices:
        return None
    if any(d.source == "simulated" for d in devices):
        real = nvml_count() if kind == "simulated" else 0
        also = f", although NVML sees {real} real GPU(s) here" if real else ""
        notes.append(f"GPU sampling uses a SIMULATED device (gpu={kind!r}{also}); its figures are not measurements")

    def read() -> list[dict]:
        return [{**_stamp(), "source": d.source, "device": d.device, "role": "gpu", "pid": server,
                 **d.read()} for d in devices]
    return read


def host_reader(spec: dict[str, Any]) -> Callable[[], list[dict]] | None:
    if not spec.get("host", True):
        return None
    sampler = HostSampler(spec.get("pids") or {})

    def read() -> list[dict]:
        stamp = _stamp()
        return [{**stamp, "source": sampler.source, **row} for row in sampler.read()]
    return read


def loop(read: Callable[[], list[dict]], writer: LineWriter, hz: float, stop: threading.Event) -> None:
    """Read and write every 1/hz s on a fixed grid (no drift), until `stop` is set."""
    period = 1.0 / hz
    due = time.monotonic()
    while not stop.is_set():
        for row in read():
            writer.write(row)
        due += period
        stop.wait(max(0.0, due - time.monotonic()))
        if time.monotonic() - due > period:  # fell behind (suspended): skip, don't burst
            due = time.monotonic()


def _watch_parent(parent: int, stop: threading.Event) -> None:
    while os.getppid() == parent and not stop.wait(0.5):
        pass
    stop.set()


def on_signals() -> list[int]:
    """SIGTERM/SIGINT append their number to the returned list, and do nothing else: a handler
    runs between two bytecodes of the main thread, which may hold the lock of the very Event
    the handler would set (inside `Event.wait`), and that lock is not reentrant, so a handler
    calling `Event.set()` can hang the process for good."""
    signalled: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signalled.append(signum))
    return signalled


def run(spec: dict[str, Any], out=sys.stdout) -> None:
    """Sample until SIGTERM/SIGINT or the parent's death; notices and `ready` go to `out`."""
    spool = Path(spec["spool_dir"])
    spool.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    readers = [("gpu", gpu_reader(spec, notes), float(spec.get("gpu_hz") or 10.0)),
               ("host", host_reader(spec), float(spec.get("host_hz") or 2.0))]
    readers = [(name, r, hz) for name, r, hz in readers if r is not None]
    for note in notes:
        print(json.dumps({"note": note}), file=out, flush=True)
    print(json.dumps({"event": "ready", "producers": [n for n, _, _ in readers]}), file=out, flush=True)
    stop = threading.Event()
    signalled = on_signals()
    # The spec names the parent: if it died before this line, getppid() already differs.
    parent = int(spec.get("parent_pid") or os.getppid())
    threading.Thread(target=_watch_parent, args=(parent, stop), daemon=True).start()
    writers = [LineWriter(spool / samples_file(name)) for name, _, _ in readers]
    threads = [threading.Thread(target=loop, args=(r, w, hz, stop), daemon=True)
               for (_, r, hz), w in zip(readers, writers)]
    for t in threads:
        t.start()
    while not (stop.wait(0.2) or signalled):
        pass
    stop.set()
    for t in threads:
        t.join(5)
    for w in writers:
        w.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m profilers", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON file with the sampler spec")
    args = parser.parse_args(argv)
    try:
        spec = json.loads(Path(args.spec).read_text())
    except (OSError, ValueError) as exc:
        print(f"profilers: error: cannot read spec {args.spec}: {exc}", file=sys.stderr)
        return 2
    run(spec)
    return 0
