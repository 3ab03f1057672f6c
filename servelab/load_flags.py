"""`servelab run` flags -> one `LoadConfig`: the open/closed and trace defaults in one place.

Rules: `--rate` means open loop, `--users` closed loop (not both). With `--trace` and
neither, the trace's own timestamps drive an open loop (`arrival=trace`) and its rows give
the lengths (`workload=trace`). `--dataset FILE.jsonl` sends that dataset's prompt texts
(`workload=dataset`), with any arrivals. `--rate-steps "10:30,40:30"` is (rate:seconds, ...).
`--rate-steps` alone means `--arrival steps`, `--rate-end` alone `--arrival ramp`.
A trace that cannot be read is a user error (one line), found before anything starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from servelab.config import LoadConfig
from servelab.datafiles import data_path
from servelab.errors import UserError


def parse_rate_steps(text: str | None) -> list[tuple[float, float]] | None:
    """`"10:30,40:30"` -> [(10.0, 30.0), (40.0, 30.0)]: rate (req/s) : seconds."""
    if not text:
        return None
    try:
        return [(float(r), float(s)) for r, s in (part.split(":") for part in text.split(","))]
    except ValueError:
        raise UserError(f"bad --rate-steps {text!r}: use rate:seconds pairs, e.g. 10:30,40:30") from None


def _data_file(path: str | None) -> str | None:
    """An absolute path; `data/...` that is not here names servelab's own data files (a
    regular install carries them inside the package: servelab/datafiles.py)."""
    if not path:
        return None
    p = Path(path)
    if not p.exists() and not p.is_absolute() and p.parts[0] == "data":
        shipped = data_path(*p.parts[1:])
        if shipped.exists():
            return str(shipped)
    return str(p.resolve())


def build_load(fields: dict[str, Any]) -> LoadConfig:
    """The run's LoadConfig from LoadConfig fields (flags over file over environment), where
    `users`, `rate`, `arrival` and `workload` may be None: not given anywhere."""
    fields = dict(fields)
    users, rate = fields.pop("users", None), fields.pop("rate", None)
    arrival, workload = fields.pop("arrival", None), fields.pop("workload", None)
    trace, dataset = fields.pop("trace_path", None), fields.pop("dataset_path", None)
    if users is not None and rate is not None:
        raise UserError("give either --users (closed loop) or --rate (open loop), not both")
    if isinstance(fields.get("rate_steps"), str):  # the flag's text syntax, also from the environment
        fields["rate_steps"] = parse_rate_steps(fields["rate_steps"])
    if arrival is None:  # the shape flags name their arrival policy themselves
        arrival = ("trace" if trace and rate is None and users is None else "steps" if fields.get("rate_steps")
                   else "ramp" if fields.get("rate_end") is not None else "poisson")
    mode = "open" if rate is not None or arrival in ("trace", "steps") else "closed"
    load = LoadConfig(mode=mode, users=users or 1, rate=rate, arrival=arrival,
                      workload=workload or ("dataset" if dataset else "trace" if trace else "fixed"),
                      dataset_path=_data_file(dataset), trace_path=_data_file(trace), **fields)
    if load.trace_path:
        from loadtest.traces import read_trace

        try:
            read_trace(load.trace_path, load.trace_format)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if load.dataset_path:
        from loadtest.datasets import read_dataset

        try:
            read_dataset(load.dataset_path)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    return load
