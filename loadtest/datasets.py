"""JSONL prompt datasets: real prompt texts (and output lengths) to send instead of generated ones.

One JSON object per line, in any of these shapes (detected per line):

- ShareGPT: `{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}, ...]}`
  (also `"role"`/`"content"` keys, and `"messages"` instead of `"conversations"`): the first
  user turn is the prompt; the assistant turn after it gives the output length, as in vLLM's
  `benchmark_serving.py --dataset-name sharegpt`.
- Prompt rows: `{"prompt": ..., "output_tokens": N}` or `{"prompt": ..., "completion": ...}`;
  without either, the output length is the load's `max_tokens`.

Token counts never need a tokenizer download: for the built-in server (byte-level
tokenizer) a text's token count is its UTF-8 byte count, exact; for any other target it is
the documented estimate `ceil(characters / 4)` (OpenAI's rule of thumb for English), and the
target's `usage` reports the exact counts, which the store keeps beside the estimate.

Rows without a usable prompt (no user turn, empty text) are skipped and counted; a file
with none left is an error. Pure except for reading the one file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

USER_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant", "chatgpt", "bard", "model")


class DatasetError(ValueError):
    """A dataset file that cannot be used: one line saying which file and why."""


@dataclass(frozen=True)
class Row:
    prompt: str
    reply: str | None = None  # the reference answer, for its length
    output_tokens: int | None = None  # an explicit output length


@dataclass(frozen=True)
class Dataset:
    rows: tuple[Row, ...]
    skipped: int  # lines without a usable prompt

    def __len__(self) -> int:
        return len(self.rows)


def count_tokens(text: str, exact_bytes: bool) -> int:
    """Tokens in `text`: UTF-8 bytes for a byte-level tokenizer, else ceil(chars / 4)."""
    n = len(text.encode("utf-8")) if exact_bytes else math.ceil(len(text) / 4)
    return max(1, n)


def _turn(turn: dict) -> tuple[str, str]:
    role = str(turn.get("from", turn.get("role", ""))).lower()
    value = turn.get("value", turn.get("content", ""))
    return role, value if isinstance(value, str) else ""


def parse_row(obj: object) -> Row | None:
    """One line's row, or None when it has no usable prompt."""
    if not isinstance(obj, dict):
        return None
    turns = obj.get("conversations", obj.get("messages"))
    if isinstance(turns, list):
        parsed = [_turn(t) for t in turns if isinstance(t, dict)]
        for i, (role, text) in enumerate(parsed):
            if role in USER_ROLES and text.strip():
                reply = next((t for r, t in parsed[i + 1:] if r in ASSISTANT_ROLES and t.strip()), None)
                return Row(text, reply)
        return None
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return None
    out = obj.get("output_tokens")
    completion = obj.get("completion")
    return Row(prompt, completion if isinstance(completion, str) else None,
               int(out) if isinstance(out, int) and out > 0 else None)


def read_dataset(path: str | Path) -> Dataset:
    """Every usable row of a JSONL dataset file, in file order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read dataset {path}: {exc}") from None
    rows, skipped = [], 0
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise DatasetError(f"dataset {path} line {i} is not JSON") from None
        row = parse_row(obj)
        if row is None:
            skipped += 1
        else:
            rows.append(row)
    if not rows:
        raise DatasetError(f"dataset {path} has no usable prompts ({skipped} rows without a user prompt)")
    return Dataset(tuple(rows), skipped)
