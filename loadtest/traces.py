"""Readers for public LLM request traces: one `Trace` of arrival times and lengths.

Formats (each reader keeps only the columns named here; others are ignored):

- Azure LLM inference trace CSV (`TIMESTAMP,ContextTokens,GeneratedTokens`): TIMESTAMP is
  a date-time string; ContextTokens -> prompt tokens, GeneratedTokens -> output tokens.
- Mooncake JSONL (one object per line: `timestamp` in milliseconds since the first
  request, `input_length`, `output_length`, `hash_ids`): each hash id names one block of
  `block_tokens` prompt tokens (512 in the Mooncake release); requests that share a hash
  id share that block. The Alibaba Bailian traces use the same keys (read with care: their
  time unit and block size may differ; pass `block_tokens`).
- BurstGPT CSV (`Timestamp` in seconds, `Request tokens`, `Response tokens`, plus `Model`,
  `Total tokens`, `Log Type`, which are not used).

Times are float seconds relative to the trace's first request, sorted (stable). Pure
except for reading the one file; no clock, no network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")
MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")


class TraceError(ValueError):
    """A trace file that cannot be read: one line saying which file and why."""


@dataclass(frozen=True)
class Trace:
    t_s: np.ndarray  # float64 seconds since the first request, non-decreasing
    prompt: np.ndarray  # int64 prompt tokens
    output: np.ndarray  # int64 output tokens
    hash_ids: list[list[int]] | None = None  # Mooncake: shared-prefix block ids per request

    def __len__(self) -> int:
        return len(self.t_s)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _make(t_s: np.ndarray, prompt, output, hash_ids: list[list[int]] | None, path: Path) -> Trace:
    if len(t_s) == 0:
        raise TraceError(f"trace {path} has no requests")
    order = np.argsort(t_s, kind="stable")
    t = np.asarray(t_s, dtype=np.float64)[order]
    hashes = None if hash_ids is None else [hash_ids[i] for i in order]
    return Trace(t - t[0], np.asarray(prompt, dtype=np.int64)[order],
                 np.asarray(output, dtype=np.int64)[order], hashes)


def _read_csv(path: Path, columns: tuple[str, ...]):
    import pandas as pd

    try:
        df = pd.read_csv(path, usecols=list(columns))
    except ValueError as exc:
        raise TraceError(f"trace {path}: expected columns {', '.join(columns)} ({_first_line(exc)})") from None
    if df.isna().any().any():
        raise TraceError(f"trace {path}: empty cells in {', '.join(columns)}")
    return df


def read_azure(path: str | Path) -> Trace:
    """Azure LLM inference trace CSV; TIMESTAMP strings become seconds since the first."""
    import pandas as pd

    path = Path(path)
    df = _read_csv(path, AZURE_COLUMNS)
    try:
        ts = pd.to_datetime(df["TIMESTAMP"], format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise TraceError(f"trace {path}: bad TIMESTAMP ({_first_line(exc)})") from None
    t_s = (ts - ts.min()).dt.total_seconds().to_numpy()
    return _make(t_s, df["ContextTokens"], df["GeneratedTokens"], None, path)


def read_burstgpt(path: str | Path) -> Trace:
    """BurstGPT CSV: Timestamp (seconds), Request tokens, Response tokens."""
    path = Path(path)
    df = _read_csv(path, BURSTGPT_COLUMNS)
    return _make(df["Timestamp"].to_numpy(float), df["Request tokens"], df["Response tokens"], None, path)


def read_mooncake(path: str | Path) -> Trace:
    """Mooncake/Bailian JSONL: timestamp (ms), input_length, output_length, hash_ids."""
    path = Path(path)
    t, prompt, output, hashes = [], [], [], []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                t.append(float(obj["timestamp"]) / 1000.0)
                prompt.append(int(obj["input_length"]))
                output.append(int(obj["output_length"]))
                hashes.append([int(h) for h in obj.get("hash_ids") or []])
            except (ValueError, KeyError, TypeError) as exc:
                raise TraceError(f"trace {path} line {n}: need {', '.join(MOONCAKE_KEYS)} ({exc!r})") from None
    return _make(np.array(t), prompt, output, hashes, path)


def detect_format(path: str | Path) -> str:
    """azure, mooncake or burstgpt, from the extension and the CSV header."""
    path = Path(path)
    if path.suffix in (".jsonl", ".json"):
        return "mooncake"
    with open(path, encoding="utf-8") as fh:
        header = fh.readline()
    if all(c in header for c in AZURE_COLUMNS):
        return "azure"
    if all(c in header for c in BURSTGPT_COLUMNS):
        return "burstgpt"
    raise TraceError(f"trace {path}: unknown format (header {header.strip()[:80]!r})")


READERS = {"azure": read_azure, "mooncake": read_mooncake, "burstgpt": read_burstgpt}


def read_trace(path: str | Path, fmt: str = "auto") -> Trace:
    """The trace at `path`; TraceError (one line) if it is missing or malformed."""
    if not Path(path).is_file():
        raise TraceError(f"no trace file at {path}")
    return READERS[detect_format(path) if fmt == "auto" else fmt](path)
