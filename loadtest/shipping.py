"""Records that travel from a worker on another machine to the master (pure, no I/O).

A remote worker's timestamps are on ITS CLOCK_MONOTONIC. Master and workers agree on one
start time as wall-clock ns (`t0_wall_ns`), and each converts it once to its own monotonic
clock; the master moves a remote record onto its own clock by the difference of the two
conversions (shipped with the worker's `start` event), so step windows compare records of
every machine. Latencies are differences on one machine's clock and are not changed by the
shift; the alignment between machines is as good as their NTP sync (docs/architecture.md).
"""

from __future__ import annotations

NS_FIELDS = ("t_sched_ns", "t_send_ns", "t_first_ns", "t_last_ns")
META_NS_FIELDS = ("t_ns",)
BATCH_MAX = 500  # records per message


def shift_record(rec: dict, delta_ns: int) -> dict:
    """`rec` with every monotonic timestamp moved by `delta_ns` (wall-clock ones untouched)."""
    out = dict(rec)
    for key in NS_FIELDS:
        if out.get(key) is not None:
            out[key] = out[key] + delta_ns
    if out.get("chunk_ns"):
        out["chunk_ns"] = [t + delta_ns for t in out["chunk_ns"]]
    return out


def shift_meta(event: dict, delta_ns: int) -> dict:
    out = dict(event)
    for key in META_NS_FIELDS:
        if isinstance(out.get(key), int):
            out[key] = out[key] + delta_ns
    return out


def clock_delta(master_t0_ns: int, worker_t0_ns: int) -> int:
    """What to add to a worker's monotonic times to put them on the master's clock."""
    return master_t0_ns - worker_t0_ns


def batches(items: list, size: int = BATCH_MAX) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]
