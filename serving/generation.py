"""The contract between the HTTP layer and a token producer (the engine or calibration).

A backend turns a validated `GenRequest` into a `Generation`: an async stream of `Event`s,
one per generated token, the last one carrying a finish reason. The HTTP layer tells the
generation when each content chunk reached the transport (`chunk_sent`) and when the
response is over (`finish`), so a backend can log true send times.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class GenRequest:
    """What to generate; everything already validated and tokenized."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    stop: tuple[str, ...] = ()
    t_recv_ns: int = 0
    endpoint: str = "completions"  # or "chat": part of the result-cache key
    priority: int = 0  # the wait queue serves lower numbers first (the tier's priority)
    protected: bool = False  # its tier is protected: it may take the batch's reserved rows


@dataclass(frozen=True)
class Event:
    """One step of a generation: a text piece (one token, or "" for a bare finish).

    `finish_reason` is set on the last event only: "length", "stop", "abort" (cancelled)
    or "error" (then `error` says why).
    """

    text: str
    finish_reason: str | None = None
    error: str | None = None


# `cache` outcomes of requests that ran a generation: a miss, one that reused a stored
# prompt prefix (serving/prefix.py), one that bypassed the result levers.
GENERATED = ("miss", "prefix", "bypass")


@dataclass
class Timings:
    """Server-side breakdown of one request, reported as the `servelab` object."""

    queue_ms: float = 0.0
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    batch_size: int = 1  # largest decode batch the request was part of, itself included
    batch_mean: float = 1.0  # mean decode batch over its decode steps
    cache: str = "miss"  # one of GENERATED, or "exact"/"merged"/"semantic" (no generation of its own)
    prefix_tokens: int | None = None  # prompt tokens whose K/V were reused; None: reuse is off
    # Semantic cache only (None otherwise, and then left out of the object): embedding time
    # of the lookup, and on a hit the similarity and the matched prompt's hash.
    embed_ms: float | None = None
    semantic_similarity: float | None = None
    semantic_match: str | None = None

    def as_dict(self, prompt_tokens: int, output_tokens: int) -> dict:
        out = {
            "queue_ms": round(self.queue_ms, 3),
            "prefill_ms": round(self.prefill_ms, 3),
            "decode_ms": round(self.decode_ms, 3),
            "batch_size": self.batch_size,
            "batch_mean": round(self.batch_mean, 2),
            "cache": self.cache,
            "prompt_tokens": prompt_tokens,
            "output_tokens": output_tokens,
        }
        if self.prefix_tokens is not None:
            out["prefix_tokens"] = self.prefix_tokens
        if self.embed_ms is not None:
            out["embed_ms"] = round(self.embed_ms, 3)
        if self.semantic_similarity is not None:
            out["semantic_similarity"] = round(self.semantic_similarity, 4)
            out["semantic_match"] = self.semantic_match
        return out


@dataclass
class Generation:
    """A running request. Backends feed `queue`; the HTTP layer iterates `events()`."""

    request: GenRequest
    timings: Timings = field(default_factory=Timings)
    output_tokens: int = 0
    cancelled: bool = False
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            yield event
            if event.finish_reason is not None:
                return

    def cancel(self) -> None:
        """The client went away: the backend stops at its next step."""
        self.cancelled = True

    def chunk_sent(self, t_ns: int) -> None:
        """A content chunk was handed to the transport at `t_ns` (perf_counter_ns)."""

    def finish(self, t_done_ns: int) -> None:
        """The response is over (sent, failed or abandoned)."""


class Backend(Protocol):
    """What the HTTP layer needs from a token producer."""

    params: int  # model parameters, 0 without a model

    def start(self) -> None:
        """Called once the event loop runs, before the first request."""

    def submit(self, request: GenRequest) -> Generation:
        """Queue a request; called on the event loop thread."""

    def waiting(self) -> int:
        """Requests queued and not yet started (admission control bounds this)."""

    def close(self) -> None:
        """Stop: cancel what is running, release threads and files."""
