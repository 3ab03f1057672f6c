"""The spool contract (docs/architecture.md, "Spool files"): what a producer writes and the
one ingest reads. Owns the request record's keys, in order, the sample keys, the file
names and the append-only line writer every producer uses.

Ground floor, like `servelab/config.py`: standard library only, imported by the load
generator (`loadtest/record.py`, `loadtest/spool.py`), the samplers (`profilers/`), the
ingest (`store/ingest.py`, whose `requests`/`samples` columns are these keys after
`run_id, step`; tests/test_store_schema.py ties them to the tables) and the analysis core.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# One line of `requests-<producer>.jsonl`, in this key order.
REQUEST_KEYS = (
    "req_id", "producer", "user_id", "t_sched_ns", "t_send_ns", "wall_send_ns", "t_first_ns",
    "t_last_ns", "chunk_ns", "status", "http_status", "error", "prompt_tokens", "output_tokens",
    "prompt_tokens_client", "output_tokens_client", "max_tokens", "server",
)  # fmt: skip
STATUSES = ("ok", "http_error", "timeout", "conn_error", "stream_error", "cancelled")
MAX_ERROR_CHARS = 500  # a record's `error` text is cut here

# One line of `samples-<producer>.jsonl` (profilers/): every key optional but `t_ns`.
SAMPLE_KEYS = (
    "producer", "source", "device", "t_ns", "wall_ns", "power_w", "energy_j", "gpu_util_pct",
    "mem_util_pct", "mem_used_bytes", "mem_total_bytes", "sm_clock_mhz", "mem_clock_mhz", "temp_c",
    "throttle_reasons", "proc_gpu_mem_bytes", "cpu_pct", "rss_bytes", "pid", "role",
)  # fmt: skip
STEP_KEYS = ("run_id", "step")  # what the ingest puts before a line's keys in its table


def requests_file(producer: str) -> str:
    return f"requests-{producer}.jsonl"


def meta_file(producer: str) -> str:
    return f"meta-{producer}.jsonl"


def samples_file(producer: str) -> str:
    return f"samples-{producer}.jsonl"


class LineWriter:
    """An append-only JSONL file. Each line goes to the kernel with one `os.write` on an
    O_APPEND descriptor, so once `write` returns it survives a SIGKILL of this process, and
    a kill can cut at most the line being written (the ingest skips a cut line). No fsync:
    a power loss may lose the tail, which the ingest tolerates too."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self.fd = os.open(self.path, flags, 0o644)

    def write(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        # os.write may write less than asked (disk full, huge line); finish the line or raise.
        while data:
            data = data[os.write(self.fd, data):]

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = -1
