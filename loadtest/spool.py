"""The spool writer: one producer's append-only JSONL files for one step.

`requests-<producer>.jsonl` gets one line per finished request, `meta-<producer>.jsonl` one
line per lifecycle event (docs/architecture.md). The line format and the append-only
writer (one `os.write` per line, so a kill cuts at most the line being written) are the
spool contract's, `servelab/spoolfile.py`. Pure: plain file I/O, no gevent; a
regular-file write does not yield under gevent anyway.
"""

from __future__ import annotations

import os
from pathlib import Path

from servelab.spoolfile import LineWriter, meta_file, requests_file


class SpoolWriter:
    """Appends JSON lines to `<dir>/requests-<producer>.jsonl` and `<dir>/meta-<producer>.jsonl`."""

    def __init__(self, directory: str | os.PathLike[str], producer: str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.producer = producer
        self.requests_path = self.dir / requests_file(producer)
        self.meta_path = self.dir / meta_file(producer)
        self._requests = LineWriter(self.requests_path)
        self._meta = LineWriter(self.meta_path)

    def write_request(self, record: dict) -> None:
        self._requests.write(record)

    def write_meta(self, event: dict) -> None:
        self._meta.write(event)

    def close(self) -> None:
        self._requests.close()
        self._meta.close()

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
