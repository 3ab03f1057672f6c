"""Per-request lengths: how many prompt tokens to send and output tokens to ask for.

Workloads (`LoadConfig.workload`):

- `fixed`: every request has `prompt_tokens` and `max_tokens`.
- `uniform`, `normal`, `lognormal`: each length drawn independently around its mean
  (`prompt_tokens`, `max_tokens`) with coefficient of variation `length_cv` = std/mean.
  uniform on [m(1 - sqrt(3) cv), m(1 + sqrt(3) cv)]; normal N(m, (m cv)^2);
  lognormal with sigma^2 = ln(1 + cv^2), mu = ln(m) - sigma^2/2 (so its mean is m).
  Rounded, then clipped to >= 1.
- `trace`: the trace's rows in order (from the first replayed row), cycling if the step
  outlasts the trace: ContextTokens/input_length -> prompt, GeneratedTokens/output_length
  -> max_tokens (sent with ignore_eos, so the server generates exactly that many).
- `dataset`: prompt texts from a JSONL dataset (`loadtest.datasets`: ShareGPT
  conversations or prompt rows), in a seeded random order, reshuffled each pass; the
  output length is the row's `output_tokens`, else its reference reply's length, else
  `max_tokens`. Rows whose prompt alone does not fit `max_context` are skipped (as vLLM's
  benchmark filters them); their text is never cut.

Every request is then capped so prompt + output <= `max_context` (the target's limit):
output = min(output, output_cap, max_context - 1), prompt = min(prompt, max_context - output).
Pure: no I/O; the trace is read by the caller (`loadtest.traces`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from servelab.config import LoadConfig


class Lengths(NamedTuple):
    prompt: int
    output: int
    blocks: tuple[int, ...] = ()  # shared-prefix block ids (Mooncake hash_ids)
    capped: bool = False
    text: str | None = None  # a dataset's prompt text (sent as is)


def cap(prompt: int, output: int, max_context: int, output_cap: int | None = None) -> tuple[int, int, bool]:
    """(prompt, output, whether either was cut) with prompt + output <= max_context."""
    out = max(1, min(output, max_context - 1, output_cap or output))
    pr = max(1, min(prompt, max_context - out))
    return pr, out, (pr, out) != (prompt, output)


def draw(dist: str, mean: float, cv: float, rng: np.random.Generator) -> int:
    """One length from `dist` with the given mean and std/mean (formulas: module docstring)."""
    if dist == "fixed" or cv == 0:
        x = mean
    elif dist == "uniform":
        half = math.sqrt(3) * cv * mean
        x = rng.uniform(mean - half, mean + half)
    elif dist == "normal":
        x = rng.normal(mean, cv * mean)
    elif dist == "lognormal":
        sigma2 = math.log1p(cv * cv)
        x = rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))
    else:
        raise ValueError(f"unknown length distribution {dist!r}")
    return max(1, round(x))


def _drawn(load: LoadConfig, rng: np.random.Generator) -> Iterator[tuple[int, int, tuple[int, ...]]]:
    while True:
        yield (draw(load.workload, load.prompt_tokens, load.length_cv, rng),
               draw(load.workload, load.max_tokens, load.length_cv, rng), ())


def _trace_rows(trace, first: int) -> Iterator[tuple[int, int, tuple[int, ...]]]:
    n = len(trace)
    for i in itertools.chain(range(first, n), itertools.cycle(range(n))):
        blocks = tuple(trace.hash_ids[i]) if trace.hash_ids is not None else ()
        yield int(trace.prompt[i]), int(trace.output[i]), blocks


def _dataset_rows(load: LoadConfig, dataset, rng: np.random.Generator,
                  exact_bytes: bool) -> Iterator[Lengths]:
    from loadtest.datasets import count_tokens

    rows = []
    for row in dataset.rows:
        prompt = count_tokens(row.prompt, exact_bytes)
        if prompt >= load.max_context:
            continue
        output = row.output_tokens or (count_tokens(row.reply, exact_bytes) if row.reply else load.max_tokens)
        rows.append((prompt, output, row.prompt))
    if not rows:
        raise ValueError(f"no dataset prompt fits max_context={load.max_context} tokens")
    while True:
        for i in rng.permutation(len(rows)).tolist():
            prompt, output, text = rows[i]
            _, out, cut = cap(prompt, output, load.max_context, load.output_cap)
            yield Lengths(prompt, out, (), cut, text)


def lengths_for(load: LoadConfig, rng: np.random.Generator, trace=None, first_row: int = 0,
                exact_bytes: bool = False) -> Iterator[Lengths]:
    """An endless iterator of capped per-request lengths for `load.workload`.

    `trace` is the trace for workload `trace`, the `loadtest.datasets.Dataset` for
    `dataset`; `exact_bytes`: the target's tokenizer is byte-level (the built-in server).
    """
    if load.workload == "dataset":
        if trace is None:
            raise ValueError("workload 'dataset' needs the dataset")
        yield from _dataset_rows(load, trace, rng, exact_bytes)
        return
    if load.workload == "trace":
        if trace is None:
            raise ValueError("workload 'trace' needs the trace")
        rows = _trace_rows(trace, first_row)
    else:
        rows = _drawn(load, rng)
    for prompt, output, blocks in rows:
        p, o, cut = cap(prompt, output, load.max_context, load.output_cap)
        yield Lengths(p, o, blocks, cut)
