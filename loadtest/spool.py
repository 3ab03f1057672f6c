"""The spool writer: one producer's append-only JSONL files for one step.

`requests-<producer>.jsonl` gets one line per finished request, `meta-<producer>.jsonl` one
line per lifecycle event (docs/architecture.md). Each line is handed to the kernel with a
single `os.write` on an O_APPEND descriptor, so once `write_*` returns the line survives a
SIGKILL of this process, and a kill can cut at most the line being written. (There is no
fsync: a power loss may lose the tail, which the ingest already tolerates.) Pure: plain
file I/O, no gevent; a regular-file write does not yield under gevent anyway.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class SpoolWriter:
    """Appends JSON lines to `<dir>/requests-<producer>.jsonl` and `<dir>/meta-<producer>.jsonl`."""

    def __init__(self, directory: str | os.PathLike, producer: str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.producer = producer
        self.requests_path = self.dir / f"requests-{producer}.jsonl"
        self.meta_path = self.dir / f"meta-{producer}.jsonl"
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._requests = os.open(self.requests_path, flags, 0o644)
        self._meta = os.open(self.meta_path, flags, 0o644)

    def write_request(self, record: dict) -> None:
        _append(self._requests, record)

    def write_meta(self, event: dict) -> None:
        _append(self._meta, event)

    def close(self) -> None:
        for fd in (self._requests, self._meta):
            try:
                os.close(fd)
            except OSError:
                pass
        self._requests = self._meta = -1

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _append(fd: int, obj: dict) -> None:
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    # os.write may write less than asked (disk full, huge line); finish the line or raise.
    while data:
        written = os.write(fd, data)
        data = data[written:]
