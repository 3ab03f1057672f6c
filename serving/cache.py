"""The exact result cache: finished outputs of deterministic requests, by request key.

Key = the prompt's token ids after tokenisation (chat after its template) + every
generation parameter that changes the output: endpoint, max_tokens, temperature, top_p,
seed, stop, ignore_eos, min_tokens. Text prompts are NOT whitespace-normalised beyond
that: the tokenizer is byte-level, so "a  b" and "a b" are different token sequences and
may well produce different outputs; an exact cache must return what the model would.

Only deterministic requests are cacheable: temperature 0 (greedy), or a fixed `seed`
(the engine seeds one generator per request from it). A request with temperature > 0 and
no seed asks for a fresh sample each time, so it is never cached or merged.

Entries live `ttl_s` seconds and at most `size` are kept, least recently used evicted
first. Pure: no I/O, a clock can be injected for tests.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from serving.generation import Event, GenRequest

Key = tuple


def deterministic(req: GenRequest) -> bool:
    """Whether the same request always yields the same output (see the module docstring)."""
    return req.temperature == 0 or req.seed is not None


def params_key(req: GenRequest) -> Key | None:
    """Every part of the key except the prompt, or None when `req` is not deterministic.

    The semantic cache (serving/semantic.py) matches prompts by meaning but only ever within
    one `params_key`, so a hit was generated under the same parameters."""
    if not deterministic(req):
        return None
    # Under greedy decoding the seed and top_p do not change the output: leave them out.
    greedy = req.temperature == 0
    return (req.endpoint, req.max_tokens, req.temperature, None if greedy else req.seed,
            1.0 if greedy else req.top_p, req.stop, req.ignore_eos, req.min_tokens)


def request_key(req: GenRequest) -> Key | None:
    """The cache/merge key of `req`, or None when it is not deterministic."""
    params = params_key(req)
    return None if params is None else (tuple(req.prompt_ids), *params)


@dataclass(frozen=True)
class Stored:
    """One finished output: its events (text pieces, the last with the finish reason)."""

    events: tuple[Event, ...]
    output_tokens: int


class ResultCache:
    """LRU of `size` entries, each valid for `ttl_s` seconds after it was stored."""

    def __init__(self, size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self.size = size
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: OrderedDict[Key, tuple[float, Stored]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Stored | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires, stored = item
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return stored

    def put(self, key: Key, stored: Stored) -> None:
        self._entries[key] = (self.clock() + self.ttl_s, stored)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
