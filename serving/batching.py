"""Batched scheduling on the engine's worker thread: static and continuous batching.

Both keep the running sequences packed in rows 0..B-1 of one KV cache of
`max_batch_size` rows, and decode them together: ONE `model(tokens[B, 1], cache, pos[B])`
per step, each row at its own position (the model masks each row's keys beyond its own
length). Prefill: requests that join in the same step and have prompts of the same length
run as one [n, T] forward pass into consecutive rows of the shared cache (no padding
needed); a prompt of another length runs as its own forward pass. On a CPU a 128-token
prefill of the small model costs ~60 ms, so one pass for n equal prompts saves the
per-call overhead and weight reads of n-1 passes; padding mixed lengths is not done.
With prefix reuse on, a joining request whose prompt starts with a stored prefix gets
that prefix's K/V copied into its row and runs only the rest (`serving.prefix`); hits
with the same reused length prefill together, misses as above.

- static: when idle, wait for a first request, then up to `max_wait_ms` more to fill up to
  `max_batch_size`; run that batch to completion; later requests wait for the next batch.
- continuous (Orca / vLLM iteration-level scheduling): before every decode step, queued
  requests join while there is room, and finished ones leave after it.

Timings per request: queue_ms ends when it is admitted to the batch; prefill_ms runs from
there to its first token, so it includes the prefills of requests admitted just ahead of
it in the same step; batch_size is the LARGEST decode batch it was part of (itself
included), batch_mean the mean over its decode steps.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from serving import sampling
from serving.generation import Event
from serving.stops import StopMatcher

if TYPE_CHECKING:  # for the checker only: engine.py starts this module's loop
    from serving.engine import EngineGeneration

log = logging.getLogger(__name__)

_EMPTY = object()  # nothing queued (distinct from None, the shutdown sentinel)


@dataclass
class _Row:
    """One running sequence; `token` is sampled and not yet fed, at position `pos`."""

    gen: EngineGeneration
    rng: torch.Generator
    stops: StopMatcher
    token: int
    pos: int
    t_first: int
    steps: int = 0
    batch_sum: int = 0


def _by_prompt_length(gens: list) -> list[list]:
    """Joining requests grouped by prompt length, in order of first arrival."""
    groups: dict[int, list] = {}
    for gen in gens:
        groups.setdefault(len(gen.request.prompt_ids), []).append(gen)
    return list(groups.values())


class BatchLoop:
    """Admits, prefills and decodes requests in batches until the engine closes."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.cfg = engine.cfg
        self.cache = engine.cache  # max_batch_size rows
        self.static = self.cfg.batching == "static"
        self.rows: list[_Row] = []
        self.stopping = False

    def run(self) -> None:
        while not self.stopping and not self.engine.closing.is_set():
            joining = self._collect()
            t_join = time.perf_counter_ns()
            for group in _by_prompt_length(joining):
                self._guarded(self._join, group, t_join)
            if self.rows:
                self._guarded(self._decode_step)
        for row in self.rows:  # shutting down: end every stream still open
            self.engine._finish(row.gen, "", "abort", row.t_first)

    def _guarded(self, fn, *args) -> None:
        """A bug fails the requests it touches (the joining group, or the whole batch for a
        failed decode step), not the server."""
        try:
            fn(*args)
        except Exception as exc:
            log.exception("batched generation failed")
            victims = args[0] if args else [row.gen for row in self.rows]
            for gen in victims:
                gen.push(Event("", "error", error=f"generation failed: {type(exc).__name__}"))
            # A joining group's rows are the tail of the batch: dropping them keeps the rest packed.
            gone = {id(gen) for gen in victims}
            self.rows = [row for row in self.rows if id(row.gen) not in gone]

    def _collect(self) -> list[EngineGeneration]:
        """Requests that join the batch now (blocks only while nothing is running)."""
        room = self.cfg.max_batch_size - len(self.rows)
        if room == 0 or (self.static and self.rows):
            return []
        joining: list[EngineGeneration] = []
        deadline = None
        wait = None if not self.rows else 0.0  # idle: block until a first request arrives
        while len(joining) < room:
            if self._held_back(len(joining)):
                break
            gen = self._next(wait)
            if gen is _EMPTY:
                break
            if gen is None:
                self.stopping = True
                break
            if gen.cancelled:
                continue  # its client is gone and nobody reads its queue
            joining.append(gen)
            if self.static:  # fill the batch for up to max_wait_ms after its first request
                deadline = deadline or time.perf_counter() + self.cfg.max_wait_ms / 1e3
                wait = max(0.0, deadline - time.perf_counter())
            else:
                wait = 0.0  # continuous: take what is queued now, decode without waiting
        return joining

    def _held_back(self, joining: int) -> bool:
        """Only reserved rows are free (`reserved_rows`) and the next request may not take
        them (its tier is not protected): it waits for an unreserved row."""
        if self.cfg.max_batch_size - len(self.rows) - joining > self.cfg.reserved_rows:
            return False
        head = self.engine.jobs.peek()
        return head is not None and not head.request.protected

    def _next(self, wait: float | None):
        try:
            if wait == 0.0:
                return self.engine.jobs.get_nowait()
            return self.engine.jobs.get(timeout=wait)
        except queue.Empty:
            return _EMPTY

    def _join(self, group: list, t_join: int) -> None:
        """Prefill equal-length prompts into the next free rows (misses in one pass, prefix
        hits by reused length: `serving.prefix.Prefiller`); emit first tokens."""
        dev, slot = self.cfg.device, len(self.rows)
        prefilled = self.engine.prefiller.run(self.cache, slot, [gen.request.prompt_ids for gen in group])
        for filled in prefilled:  # in row order
            gen = group[filled.index]
            req = gen.request
            gen.timings.queue_ms = (t_join - gen.t_enqueue_ns) / 1e6
            self.engine.note_prefix(gen, filled.reused)
            rng = sampling.new_generator(req.seed, dev)
            token = self.engine._sample(filled.logits, req, rng, produced=0)
            self.rows.append(_Row(gen, rng, StopMatcher(req.stop), token, len(req.prompt_ids), 0))
        t_first = time.perf_counter_ns()
        done = []
        for i in range(slot, len(self.rows)):  # rows first, then emit: a finished one leaves
            row = self.rows[i]
            row.t_first, row.gen.timings.prefill_ms = t_first, (t_first - t_join) / 1e6
            if self._emit(row):
                done.append(i)
        self._remove(done)

    def _decode_step(self) -> None:
        """One forward pass for every running row, then each row samples and emits."""
        b, dev = len(self.rows), self.cfg.device
        tokens = torch.tensor([[r.token] for r in self.rows], device=dev)
        pos = torch.tensor([r.pos for r in self.rows], device=dev)
        logits = self.engine.model(tokens, self.cache, pos)[:, -1]
        done = []
        for i, row in enumerate(self.rows):
            row.pos, row.steps, row.batch_sum = row.pos + 1, row.steps + 1, row.batch_sum + b
            t = row.gen.timings  # set before the token is emitted: the final event reads them
            t.batch_size, t.batch_mean = max(t.batch_size, b), row.batch_sum / row.steps
            row.token = self.engine._sample(logits[i], row.gen.request, row.rng, row.gen.output_tokens)
            if self._emit(row):
                done.append(i)
        self._remove(done)

    def _emit(self, row: _Row) -> bool:
        """Emit the row's sampled token; True when its generation is over."""
        if self.engine._step(row.gen, row.token, row.stops, row.t_first):
            return True
        if row.gen.cancelled:  # client gone or shutdown: end the stream, free the row
            return self.engine._finish(row.gen, "", "abort", row.t_first)
        return False

    def _remove(self, done: list[int]) -> None:
        """Free finished rows, moving the last live row into each hole (one KV copy per
        leaver, instead of shifting every row after it)."""
        for i in sorted(done, reverse=True):
            last = len(self.rows) - 1
            if i != last:
                self.cache.move(last, i, self.rows[last].pos)
                self.rows[i] = self.rows[last]
            self.rows.pop()
