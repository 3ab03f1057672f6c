"""`servelab calibrate`: how fast can this machine's load generator go and still be exact?

Drives a known-timing target (the built-in server in calibration mode, or `--target URL`
with `--server-log PATH` for any target that writes the same log) at rising open-loop
rates, one stored run per rate (label "calibrate N req/s"), and compares the client's
TTFT and chunk gaps with the server's log (analysis/calibration.py). The maximum accurate
rate is the highest rate that meets the limits (`analysis.calibration.accurate`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from analysis.calibration import accurate, errors_ms, match, max_accurate_rate, parse_log
from servelab.config import LoadConfig, RunConfig, SamplerConfig, ServerConfig
from servelab.errors import UserError

Progress = Callable[[dict], None]


@dataclass
class CalibrateConfig:
    rates: list[float] = field(default_factory=lambda: [5.0, 20.0, 50.0, 100.0, 200.0])
    duration_s: float = 10.0
    ttft_ms: float = 50.0
    itl_ms: float = 10.0
    chunks: int = 32
    target: str = "builtin"
    server_log: str | None = None
    ttft_p50_ms: float = 1.0
    ttft_p99_ms: float = 2.0
    rate_tol: float = 0.01
    workers: int = 1
    server_cpus: set[int] | None = None  # pin the built-in server to these CPUs
    client_cpus: set[int] | None = None  # pin this process and the load generators it starts


def parse_rates(text: str) -> list[float]:
    """`"5,20,50"` -> [5.0, 20.0, 50.0]; anything else is a user error."""
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise UserError(f"bad --rates {text!r}: use comma-separated numbers, e.g. 5,20,50") from None
    if not rates or min(rates) <= 0:
        raise UserError("--rates needs at least one positive rate")
    return rates


def parse_cpus(text: str | None, flag: str) -> set[int] | None:
    """`"1"`, `"0,2"` or `"0-3"` -> a set of CPU numbers this process may use; None for None."""
    if text is None:
        return None
    if not hasattr(os, "sched_setaffinity"):
        raise UserError(f"{flag} needs CPU affinity, which this platform does not offer (Linux does)")
    cpus: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise UserError(f"bad {flag} {text!r}: use CPU numbers like 1, 0,2 or 0-3") from None
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise UserError(f"bad {flag} {text!r}: this process may use CPUs {_cpu_list(allowed)}")
    return cpus


def _cpu_list(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


@contextlib.contextmanager
def _pinned_client(cpus: set[int] | None) -> Iterator[None]:
    """This process (and every load generator it starts meanwhile) on `cpus`, then back."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def _calibration_target(cfg: CalibrateConfig) -> Iterator[tuple[str, Path]]:
    """(base URL, server log path): the built-in calibration server, or the given target."""
    if cfg.target != "builtin":
        if not cfg.server_log:
            raise UserError("--target URL needs --server-log PATH (the target's calibration log)")
        if cfg.server_cpus is not None:
            raise UserError("--server-cpus pins the built-in server only (pin your own target when you start it)")
        yield cfg.target, Path(cfg.server_log)
        return
    from servelab.targets import builtin_server

    with tempfile.TemporaryDirectory(prefix="servelab-calib-") as tmp:
        log = Path(tmp) / "calib.jsonl"
        server = ServerConfig(calibration=True, calib_ttft_ms=cfg.ttft_ms, calib_itl_ms=cfg.itl_ms,
                              calib_log=str(log))
        with builtin_server(server) as target:
            if cfg.server_cpus is not None and target.pid is not None:
                os.sched_setaffinity(target.pid, cfg.server_cpus)
            yield target.url, log


def _log_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _read_log_from(path: Path, offset: int) -> list[dict]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return parse_log(fh.read().decode("utf-8", "replace").splitlines())


def _run_config(cfg: CalibrateConfig, url: str, rate: float) -> RunConfig:
    load = LoadConfig(mode="open", rate=rate, arrival="constant", duration_s=cfg.duration_s,
                      warmup_s=0.0, max_tokens=cfg.chunks, prompt_tokens=16, drain_s=10.0)
    return RunConfig(target=url, label=f"calibrate {rate:g} req/s", load=load, workers=cfg.workers,
                     profile=SamplerConfig(enabled=False))  # a sampler would take the client's CPU


def measure_rate(cfg: CalibrateConfig, store: str, url: str, log: Path, rate: float,
                 on_progress: Progress | None = None) -> dict:
    """One stored run at `rate`; its accuracy figures."""
    from servelab.results import run_summary
    from servelab.runner import execute_run
    from store import queries

    offset = _log_size(log)
    run_id = execute_run(_run_config(cfg, url, rate), store, on_progress)
    summary = run_summary(store, run_id)
    reqs = queries.get_requests(store, run_id).to_dict("records")
    ok = [r for r in reqs if r["status"] == "ok"]
    if not log.is_file():
        raise UserError(f"no calibration log at {log}: is the target in calibration mode?")
    row = {"rate": rate, "run_id": run_id, "requests": len(reqs), "ok": len(ok),
           **errors_ms(match(ok, _read_log_from(log, offset)))}
    step = summary["steps"][0] if summary.get("steps") else {}
    steps = queries.get_steps(store, run_id)
    row.update(achieved_rate=step.get("achieved_rate"),
               schedule_lag_p99_ms=(summary.get("schedule_lag_ms") or {}).get("p99"),
               client_cpu_pct=steps[0].get("client_cpu_pct") if steps else None,
               client_stall_max_ms=steps[0].get("client_stall_max_ms") if steps else None)
    return row


def calibrate(cfg: CalibrateConfig, store: str, on_progress: Progress | None = None,
              on_row: Callable[[dict], None] | None = None) -> dict:
    """Every rate in turn; {"rows": [...], "max_accurate_rate": r or None, "limits": {...}}."""
    rows = []
    # The server starts first, so it is not pinned with the client.
    with _calibration_target(cfg) as (url, log), _pinned_client(cfg.client_cpus):
        for rate in cfg.rates:
            row = measure_rate(cfg, store, url, log, rate, on_progress)
            rows.append(row)
            if on_row:
                on_row(row)
    limits = {"ttft_p50_ms": cfg.ttft_p50_ms, "ttft_p99_ms": cfg.ttft_p99_ms, "rate_tol": cfg.rate_tol}
    for r in rows:
        r["ratio"] = r["achieved_rate"] / r["rate"] if r.get("achieved_rate") else None
        r["accurate"] = accurate(r, **limits)
    return {"rows": rows, "limits": limits, "max_accurate_rate": max_accurate_rate(rows, **limits),
            "target": {"ttft_ms": cfg.ttft_ms, "itl_ms": cfg.itl_ms, "chunks": cfg.chunks},
            "pinning": {"server_cpus": _sorted(cfg.server_cpus), "client_cpus": _sorted(cfg.client_cpus)}}


def _sorted(cpus: set[int] | None) -> list[int] | None:
    return None if cpus is None else sorted(cpus)
