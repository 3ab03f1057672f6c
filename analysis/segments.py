"""Per-rate figures inside one step: the segments of a `steps` schedule and the bins of a ramp.

A step whose arrivals change rate (config `arrival: steps` or `ramp`) is several loads in
one run; pooling them hides exactly what the user asked to see (where latency turns).
So each rate segment is summarised as a step of its own: a virtual step row with its own
start, length, warm-up and rate, judged by the same functions as a real step
(analysis/summary.py). Pure: rows in, rows out.

- `steps`: one segment per (rate, seconds) pair inside the step; each excludes the step's
  warm-up at its start (capped at half the segment), because the queue left by the
  previous rate takes time to settle.
- `ramp`: RAMP_BINS equal bins; the rate shown is the bin's mean rate; only the first bin
  excludes the warm-up (a ramp never settles, each bin is a sample of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analysis.records import field

RAMP_BINS = 5
NS = 1_000_000_000


def _rows(step: Mapping[str, Any], parts: list[tuple[float, float, float, float]]) -> list[dict[str, Any]]:
    t0 = field(step, "t_start_ns")
    t_end = field(step, "t_end_ns")
    out = []
    for j, (start_s, end_s, rate, warmup_s) in enumerate(parts):
        start_ns = None if t0 is None else t0 + round(start_s * NS)
        # windows are inclusive at both ends: stop 1 ns short, so an arrival exactly at the
        # boundary belongs to the next segment only
        seg_end = None if t0 is None else t0 + round(end_s * NS) - 1
        out.append({"step": field(step, "step"), "segment": j, "mode": "open", "users": None,
                    "rate": rate, "status": field(step, "status"), "t_start_ns": start_ns,
                    "t_end_ns": seg_end if t_end is None or seg_end is None else min(seg_end, t_end),
                    "duration_s": end_s - start_s, "warmup_s": warmup_s,
                    "segment_start_s": start_s, "segment_end_s": end_s})
    return out


def segment_rows(step: Mapping[str, Any], load: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Virtual step rows, one per rate segment; [] for a step with one rate."""
    arrival, duration = load.get("arrival"), field(step, "duration_s") or load.get("duration_s")
    if load.get("mode") != "open" or not duration:
        return []
    warmup = field(step, "warmup_s") or 0.0
    if arrival == "steps" and load.get("rate_steps"):
        parts, t = [], 0.0
        for rate, seconds in load["rate_steps"]:
            if t >= duration:
                break
            end = min(t + seconds, duration)
            parts.append((t, end, float(rate), min(warmup, (end - t) / 2)))
            t += seconds
        return _rows(step, parts) if len(parts) > 1 else []
    if arrival == "ramp" and load.get("rate") is not None and load.get("rate_end") is not None:
        r0, r1, width = float(load["rate"]), float(load["rate_end"]), duration / RAMP_BINS
        parts = [(j * width, (j + 1) * width, r0 + (r1 - r0) * (j + 0.5) / RAMP_BINS,
                  min(warmup, width / 2) if j == 0 else 0.0) for j in range(RAMP_BINS)]
        return _rows(step, parts)
    return []
