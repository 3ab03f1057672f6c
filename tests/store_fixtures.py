"""Real servelab stores for dashboard tests, built without running any load.

The spool files are written exactly as the load generator writes them (docs/architecture.md,
"Spool files"; `loadtest.spool.SpoolWriter`): `requests-w0.jsonl` with integer-ns
`perf_counter` timestamps and `meta-w0.jsonl` with start/stop/end events. They go through
the store's own lifecycle: `create_run` -> `add_step` -> `spool_dir` -> `ingest_step` ->
`finish_run`, so the dashboard reads the same rows a real run would leave.

Timings are deterministic (a seeded RNG), so counts and ids are known to the tests:

- OPEN_RUN: open loop, Poisson-ish arrivals at 5 req/s for 12 s (1.2 s warm-up),
  OPEN_OK ok requests plus OPEN_ERRORS failures (one HTTP 503, one timeout), SLO attached.
- CLOSED_RUN: closed loop, 2 users, CLOSED_OK ok requests, no SLO.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from loadtest.record import new_record
from loadtest.spool import SpoolWriter
from servelab.config import LoadConfig, RunConfig, SLOTerm
from store import add_step, create_run, finish_run, ingest_step, spool_dir
from store.schema import connect_write

OPEN_RUN = "r20260101-120000-aaaa"
CLOSED_RUN = "r20260101-120500-bbbb"
OPEN_OK, OPEN_ERRORS = 50, 2
CLOSED_OK = 30
RUN_IDS = (OPEN_RUN, CLOSED_RUN)
REQUESTS = {OPEN_RUN: OPEN_OK + OPEN_ERRORS, CLOSED_RUN: CLOSED_OK}

HOST = {"hostname": "fixture", "platform": "Linux", "python": "3.11", "cpus": 2, "mem_bytes": 8 << 30}
MS = 1_000_000
S = 1_000_000_000
T0 = 5_000 * S  # a perf_counter_ns origin, far from zero like a real machine's uptime
WALL0 = 1_767_268_800 * S  # 2026-01-01T12:00:00Z


def _ok_record(rng: random.Random, rid: str, user_id: int | None, t_sched: int | None,
               t_send: int, max_tokens: int) -> dict[str, Any]:
    """An ok streaming request: TTFT ~40-120 ms, then max_tokens chunks ~8-14 ms apart."""
    rec = new_record(rid, "w0", user_id, t_sched, max_tokens, 128)
    t = t_send + rng.randint(40, 120) * MS
    chunks = [t]
    for _ in range(max_tokens - 1):
        t += rng.randint(8_000, 14_000) * 1_000
        chunks.append(t)
    queue_ms = round(rng.uniform(0.1, 3.0), 3)
    rec.update({
        "t_send_ns": t_send, "wall_send_ns": WALL0 + (t_send - T0), "t_first_ns": chunks[0],
        "t_last_ns": chunks[-1] + 1 * MS, "chunk_ns": chunks, "status": "ok", "http_status": 200,
        "prompt_tokens": 128, "output_tokens": max_tokens, "output_tokens_client": len(chunks),
        "server": {"queue_ms": queue_ms, "prefill_ms": round((chunks[0] - t_send) / MS - queue_ms, 3),
                   "decode_ms": round((chunks[-1] - chunks[0]) / MS, 3), "batch_size": rng.randint(1, 4)},
    })
    return rec


def _failed_record(rid: str, t_sched: int | None, t_send: int, status: str, http_status: int | None,
                   error: str, t_last: int, max_tokens: int) -> dict[str, Any]:
    rec = new_record(rid, "w0", None, t_sched, max_tokens, 128)
    rec.update({"t_send_ns": t_send, "wall_send_ns": WALL0 + (t_send - T0), "t_last_ns": t_last,
                "status": status, "http_status": http_status, "error": error})
    return rec


def _write_step(directory: Path, records: list[dict[str, Any]], t_start: int, t_stop: int) -> None:
    """One producer's spool, in the order the load generator writes it (by completion)."""
    with SpoolWriter(directory, "w0") as spool:
        spool.write_meta({"event": "start", "t_ns": t_start, "wall_ns": WALL0 + (t_start - T0), "pid": 4242})
        for rec in sorted(records, key=lambda r: r["t_last_ns"]):
            spool.write_request(rec)
        ok = sum(r["status"] == "ok" for r in records)
        spool.write_meta({"event": "stop", "t_ns": t_stop, "wall_ns": WALL0 + (t_stop - T0),
                          "sent": len(records), "completed": ok})
        end = max(t_stop, *(r["t_last_ns"] for r in records)) + 5 * MS
        spool.write_meta({"event": "end", "t_ns": end})


def _record_run(path: Path, run_id: str, cfg: RunConfig, records: list[dict[str, Any]],
                t_start: int, samples: list[dict[str, Any]] = ()) -> None:
    load = cfg.load
    create_run(path, run_id, cfg.model_dump(mode="json"), cfg.target, cfg.label, HOST, "0.1.0")
    add_step(path, run_id, 0, load.mode, load.users if load.mode == "closed" else None, load.rate,
             load.duration_s, load.warmup)
    step_dir = spool_dir(path, run_id, 0)
    _write_step(step_dir, records, t_start, t_start + round(load.duration_s * S))
    if samples:  # as the sampler process spools them: one JSON object per line
        (step_dir / "samples-gpu.jsonl").write_text("".join(json.dumps(r) + "\n" for r in samples))
    ingest_step(path, run_id, 0)
    finish_run(path, run_id, "completed")


def add_open_run(path: Path, run_id: str = OPEN_RUN, seed: int = 1, label: str = "baseline fp32") -> None:
    """Open loop at 5 req/s: OPEN_OK ok requests and OPEN_ERRORS failures."""
    rng = random.Random(seed)
    cfg = RunConfig(target="http://127.0.0.1:8000", label=label,
                    load=LoadConfig(mode="open", rate=5.0, duration_s=12.0, warmup_s=1.2, max_tokens=16),
                    slo=[SLOTerm(metric="ttft", percentile=99, threshold_ms=100.0),
                         SLOTerm(metric="tpot", percentile=99, threshold_ms=15.0)])
    n = OPEN_OK + OPEN_ERRORS
    t_sched, scheds = T0, []
    for _ in range(n):
        t_sched += round(rng.expovariate(1 / 0.2) * S) + 10 * MS
        scheds.append(min(t_sched, T0 + 11 * S + len(scheds) * MS))  # all inside the 12 s step
    records = []
    for i, ts in enumerate(scheds):
        rid, t_send = f"w0-{i:06d}", ts + rng.randint(50, 900) * 1_000
        if i == 17:
            records.append(_failed_record(rid, ts, t_send, "http_error", 503, "HTTP 503: server overloaded",
                                          t_send + 4 * MS, 16))
        elif i == 33:
            records.append(_failed_record(rid, ts, t_send, "timeout", None, "no response within 2.0 s",
                                          t_send + 2 * S, 16))
        else:
            records.append(_ok_record(rng, rid, None, ts, t_send, 16))
    _record_run(path, run_id, cfg, records, T0)


def add_closed_run(path: Path, run_id: str = CLOSED_RUN, seed: int = 2) -> None:
    """Closed loop, 2 users, back to back: CLOSED_OK ok requests."""
    rng = random.Random(seed)
    cfg = RunConfig(target="builtin", label="batching on",
                    load=LoadConfig(mode="closed", users=2, duration_s=8.0, warmup_s=0.5, max_tokens=24))
    t_start = T0 + 60 * S
    clocks = [t_start, t_start]
    records = []
    for i in range(CLOSED_OK):
        user = i % 2
        t_send = clocks[user] + rng.randint(100, 400) * 1_000
        rec = _ok_record(rng, f"w0-{i:06d}", user, None, t_send, 24)
        clocks[user] = rec["t_last_ns"]
        records.append(rec)
    _record_run(path, run_id, cfg, records, t_start)


HARDWARE_RUN = "r20260101-121000-cccc"


def gpu_samples(t_start: int, seconds: float, hz: float = 10.0) -> list[dict[str, Any]]:
    """Simulated-device GPU rows and server CPU rows: 300 W + 100 J/s counter, util 80%."""
    rows = []
    for i in range(int(seconds * hz) + 1):
        t = t_start + round(i * S / hz)
        rows.append({"producer": "gpu", "source": "simulated", "device": "sim0", "role": "gpu",
                     "t_ns": t, "wall_ns": WALL0 + (t - T0), "power_w": 300.0 + (i % 3),
                     "energy_j": 100.0 * i / hz, "gpu_util_pct": 80.0, "mem_used_bytes": 8 << 30,
                     "mem_total_bytes": 80 << 30})
        rows.append({"producer": "host", "source": "psutil", "role": "server", "t_ns": t,
                     "wall_ns": WALL0 + (t - T0), "cpu_pct": 95.0, "rss_bytes": 1 << 30, "pid": 4243})
    return rows


def add_hardware_run(path: Path, run_id: str = HARDWARE_RUN, seed: int = 3) -> None:
    """Closed loop, 2 users, with simulated GPU and host samples over the whole step."""
    rng = random.Random(seed)
    cfg = RunConfig(target="builtin", label="with samples",
                    load=LoadConfig(mode="closed", users=2, duration_s=6.0, warmup_s=0.5, max_tokens=24))
    t_start = T0 + 120 * S
    clocks, records = [t_start, t_start], []
    for i in range(20):
        t_send = clocks[i % 2] + rng.randint(100, 400) * 1_000
        rec = _ok_record(rng, f"w0-{i:06d}", i % 2, None, t_send, 24)
        clocks[i % 2] = rec["t_last_ns"]
        records.append(rec)
    _record_run(path, run_id, cfg, records, t_start, gpu_samples(t_start, 6.0))
    from store.profiles import save_operators

    ops = [{"name": "aten::mm", "calls": 120, "self_cpu_us": 900.0, "self_cuda_us": 4200.0},
           {"name": "aten::softmax", "calls": 40, "self_cpu_us": 300.0, "self_cuda_us": 800.0}]
    save_operators(path, run_id, 0, ops, None, 2.0, (t_start + 2 * S, t_start + 4 * S))


def build_store(path: str | Path) -> Path:
    """A store holding OPEN_RUN then CLOSED_RUN (so CLOSED_RUN is the newest); returns its path."""
    path = Path(path)
    add_open_run(path)
    add_closed_run(path)
    return path


def build_empty_store(path: str | Path) -> Path:
    """A migrated store with no runs."""
    path = Path(path)
    connect_write(path).close()
    return path
