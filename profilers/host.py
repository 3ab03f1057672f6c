"""The host sampler (psutil): CPU per core, and CPU and memory of the run's own processes.

`HostSampler.read()` returns sample rows (the `samples` table's host columns):
one row per core (`role="core"`, `device="cpu<i>"`, `cpu_pct`), one for the whole machine
(`role="host"`, `cpu_pct` mean over cores, `rss_bytes` = memory in use), and one per
watched process (`role` = e.g. "server" or "loadgen", `pid`, `cpu_pct` of one core,
`rss_bytes`), so a saturated client or a CPU-bound server shows. A process that is gone or
not readable gives a row with nulls, never an exception.
"""

from __future__ import annotations

from typing import Any

import psutil


class HostSampler:
    """Reads host and per-process CPU/memory; cpu_pct is measured since the previous read."""

    source = "psutil"

    def __init__(self, pids: dict[str, int] | None = None):
        self.procs: dict[str, psutil.Process | None] = {}
        for role, pid in (pids or {}).items():
            try:
                proc = psutil.Process(int(pid))
                proc.cpu_percent(None)  # primes the interval
                self.procs[role] = proc
            except (psutil.Error, ValueError, TypeError):
                self.procs[role] = None
        self.pids = dict(pids or {})
        psutil.cpu_percent(None, percpu=True)

    def _proc_row(self, role: str) -> dict[str, Any]:
        row = {"role": role, "pid": self.pids.get(role), "cpu_pct": None, "rss_bytes": None}
        proc = self.procs.get(role)
        if proc is None:
            return row
        try:
            with proc.oneshot():
                row["cpu_pct"] = proc.cpu_percent(None)
                row["rss_bytes"] = proc.memory_info().rss
        except psutil.Error:
            pass
        return row

    def read(self) -> list[dict[str, Any]]:
        cores = psutil.cpu_percent(None, percpu=True)
        rows: list[dict[str, Any]] = [
            {"role": "core", "device": f"cpu{i}", "cpu_pct": float(c)} for i, c in enumerate(cores)]
        rows.append({"role": "host", "device": "cpu",
                     "cpu_pct": float(sum(cores) / len(cores)) if cores else None,
                     "rss_bytes": psutil.virtual_memory().used})
        rows.extend(self._proc_row(role) for role in self.procs)
        return rows
