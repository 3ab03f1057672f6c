"""The traffic a capacity plan is made for, read from what the user has (`servelab plan --traffic`).

SOURCE is one of:
- a number: a constant rate in req/s (`--traffic 100`), one interval of an hour;
- a trace file the load generator reads (Azure LLM trace CSV, Mooncake JSONL, BurstGPT CSV;
  loadtest/traces.py): arrival rates per hour, or per minute when it spans under two hours,
  and its mean prompt/output lengths (capped as the sweep's workload caps them);
- a CSV of hourly rates: one rate (req/s) per row, in its last column; a header row and
  other columns (e.g. `hour,req_s`) are allowed.
`scale` multiplies every rate (a trace is replayed that much faster). Problems are one
UserError line.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servelab.errors import UserError

HOURLY_TRACE_MIN_S = 2 * 3600.0  # a shorter trace gives per-minute rates


@dataclass
class Traffic:
    kind: str  # constant, trace, csv
    source: str
    rates: list[float]  # req/s per interval
    bucket_s: float
    scale: float = 1.0
    mix: dict[str, Any] | None = None  # mean prompt/output tokens per request, when known
    trace_t_s: Any = field(default=None, repr=False)  # trace arrival seconds (numpy), for the replay

    def describe(self) -> str:
        unit = "hour" if self.bucket_s >= 3600 else "minute"
        scaled = f", rates x{self.scale:g}" if self.scale != 1 else ""
        if self.kind == "constant":
            return f"a constant {self.rates[0]:g} req/s"
        return f"{self.source} ({self.kind}: {len(self.rates)} rate(s) per {unit}{scaled})"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "bucket_s": self.bucket_s, "scale": self.scale,
                "rates_req_s": self.rates, "length_mix": self.mix, "description": self.describe()}


def read_traffic(source: str, scale: float = 1.0, workload: dict[str, Any] | None = None) -> Traffic:
    """The Traffic named by `source` (module docstring); `workload`: the sweep's, for its length caps."""
    if not scale > 0 or not math.isfinite(scale):
        raise UserError(f"bad --traffic-scale {scale}: must be above 0")
    try:
        rate = float(source)
    except ValueError:
        rate = None
    if rate is not None:
        if not rate > 0 or not math.isfinite(rate):
            raise UserError(f"bad --traffic {source!r}: a constant rate must be above 0 req/s")
        return Traffic("constant", source, [rate * scale], 3600.0, scale)
    path = Path(source)
    if not path.is_file():
        raise UserError(f"bad --traffic {source!r}: not a rate (req/s) nor a file")
    from loadtest.traces import TraceError, detect_format

    try:
        detect_format(path)
    except TraceError:
        return _hourly_csv(path, scale)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {source}: {exc}") from None
    return _trace(path, scale, workload or {})


def _hourly_csv(path: Path, scale: float) -> Traffic:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    rates = []
    for n, row in enumerate(rows, 1):
        try:
            rates.append(float(row[-1]))
        except ValueError:
            if n == 1:
                continue  # a header
            raise UserError(f"{path} line {n}: {row[-1]!r} is not a rate (req/s)") from None
    if not rates:
        raise UserError(f"{path} has no rates: expected one req/s per row (an hour each), e.g. hour,req_s")
    if any(r < 0 or not math.isfinite(r) for r in rates) or max(rates) <= 0:
        raise UserError(f"{path}: rates must be >= 0 req/s, and one above 0")
    return Traffic("csv", str(path), [r * scale for r in rates], 3600.0, scale)


def _trace(path: Path, scale: float, workload: dict[str, Any]) -> Traffic:
    from analysis.plan import bucket_rates
    from loadtest.traces import TraceError, read_trace
    from loadtest.workload import cap

    try:
        trace = read_trace(path)
    except TraceError as exc:
        raise UserError(str(exc)) from None
    span = float(trace.t_s[-1]) / scale
    bucket = 3600.0 if span >= HOURLY_TRACE_MIN_S else 60.0
    # rates of the scaled trace: arrival times divided by the scale, as a replay would send them
    rates = bucket_rates((trace.t_s / scale).tolist(), bucket)
    max_context, out_cap = int(workload.get("max_context") or 2048), workload.get("output_cap")
    capped = [cap(int(p), int(o), max_context, out_cap)[:2] for p, o in zip(trace.prompt, trace.output)]
    mix = {"prompt_tokens_per_req": sum(p for p, _ in capped) / len(capped),
           "output_tokens_per_req": sum(o for _, o in capped) / len(capped),
           "raw_prompt_tokens_per_req": float(trace.prompt.mean()),
           "raw_output_tokens_per_req": float(trace.output.mean()),
           "max_context": max_context, "output_cap": out_cap}
    return Traffic("trace", str(path), rates, bucket, scale, mix, trace.t_s)
