"""Result levers at the engine's submit layer: the exact cache and in-flight merging.

`SharedBackend` wraps any backend (engine with batching none/static/continuous, or
calibration) above its scheduler, so the levers work the same with every batching mode.
For a deterministic request (`serving.cache.request_key`), in this order:

1. exact cache (`exact_cache`): a stored output is returned at once, every event already
   queued, so it streams as fast as the transport allows; timings say `cache: "exact"`
   with queue, prefill and decode 0.
2. merging (`merge_inflight`): if an identical request is generating now, the new one
   attaches to it as a follower: the events already produced are replayed to it first,
   then it gets the live ones. One generation serves them all; followers report the
   generation's timings with `cache: "merged"` (the cost was paid once, by the leader).
3. semantic cache (`semantic_cache`, serving/semantic.py): the request becomes a `Lookup`,
   a generation whose events come from a task: it awaits the prompt's embedding (on the
   embedder's thread), then either replays the stored answer of a prompt that means the
   same (`cache: "semantic"`, with `semantic_similarity` and `semantic_match`), or goes on
   to step 4 (re-checking steps 1 and 2, which may have changed meanwhile). Its timings
   carry `embed_ms` either way.
4. otherwise the request runs (`cache: "miss"`); its finished output ("stop"/"length",
   not aborted or failed) is stored in the exact cache, and in the semantic cache when
   it went through a lookup.

A `Flight` is one running generation and the responses reading it. A reader whose client
leaves only detaches: the generation goes on while any reader remains, and is cancelled
when the last one leaves. Non-deterministic requests bypass every lever (`cache:
"bypass"`). Everything here runs on the event-loop thread, except the embedding.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from servelab.config import ServerConfig
from serving import tokenizer
from serving.cache import Key, ResultCache, Stored, params_key, request_key
from serving.generation import Backend, Event, GenRequest, Generation, Timings
from serving.metrics import ServerMetrics

PENDING = "lookup"  # the `cache` of a Lookup still embedding: its outcome is not known yet

log = logging.getLogger(__name__)


class Reader(Generation):
    """One response's view of a shared generation."""

    def __init__(self, request: GenRequest, flight: Flight, leader: bool):
        super().__init__(request=request)
        self.flight = flight
        self.leader = leader
        if leader:  # the leader's timings are the generation's own
            self.timings = flight.inner.timings
        else:
            self.timings.cache = "merged"

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.flight.leave(self)

    def chunk_sent(self, t_ns: int) -> None:
        if self.leader:
            self.flight.inner.chunk_sent(t_ns)

    def finish(self, t_done_ns: int) -> None:
        if self.leader:
            self.flight.inner.finish(t_done_ns)


class Flight:
    """One running generation, fanned out to its readers by a pump task."""

    def __init__(self, inner: Generation, key: Key, backend: SharedBackend):
        self.inner = inner
        self.key = key
        self.backend = backend
        self.history: list[Event] = []
        self.readers: list[Reader] = []
        self.done = False
        self.task = asyncio.ensure_future(self._pump())

    def add(self, request: GenRequest, leader: bool) -> Reader:
        reader = Reader(request, self, leader)
        for event in self.history:  # replay what was produced before it joined
            reader.queue.put_nowait(event)
        reader.output_tokens = self.inner.output_tokens
        self.readers.append(reader)
        return reader

    def leave(self, reader: Reader) -> None:
        if reader in self.readers:
            self.readers.remove(reader)
        if not self.readers and not self.done:  # nobody is listening: stop generating
            self.inner.cancel()
            self.task.cancel()  # a request cancelled before it started never ends its stream
            self.backend.landed(self, None)

    async def _pump(self) -> None:
        try:
            async for event in self.inner.events():
                self._deliver(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a backend bug fails these requests, not the server
            log.exception("shared generation failed")
            self._deliver(Event("", "error", error=f"generation failed: {type(exc).__name__}"))

    def _deliver(self, event: Event) -> None:
        self.history.append(event)
        final = event.finish_reason is not None
        for reader in list(self.readers):
            reader.output_tokens = self.inner.output_tokens
            if final and not reader.leader:  # set before the final event: the API reads it then
                reader.timings = dataclasses.replace(self.inner.timings, cache="merged")
            reader.queue.put_nowait(event)
        if final:
            self.done = True
            ok = event.finish_reason in ("stop", "length")
            self.backend.landed(self, Stored(tuple(self.history), self.inner.output_tokens) if ok else None)


class SharedBackend:
    """Wraps a backend with the exact cache, in-flight merging and/or the semantic cache."""

    def __init__(self, inner: Backend, cfg: ServerConfig, metrics: ServerMetrics | None = None):
        self.inner = inner
        self.params = inner.params
        self.cache = ResultCache(cfg.cache_size, cfg.cache_ttl_s) if cfg.exact_cache else None
        self.merge = cfg.merge_inflight
        self.flights: dict[Key, Flight] = {}
        self.metrics = metrics or ServerMetrics()
        self.semantic = self.embedder = None
        self.threshold = cfg.semantic_threshold
        if cfg.semantic_cache:
            from serving.semantic import Embedder, SemanticIndex

            self.embedder = Embedder()  # seconds: loads the model before the server is announced
            self.semantic = SemanticIndex(cfg.semantic_cache_size, cfg.cache_ttl_s)

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()
        if self.embedder is not None:
            self.embedder.close()

    def waiting(self) -> int:
        return self.inner.waiting()

    def cached(self, request: GenRequest) -> bool:
        """Whether the exact cache holds this request's answer now: it would never queue, so
        admission does not refuse or degrade it for overload."""
        key = request_key(request)
        return key is not None and self.cache is not None and self.cache.get(key) is not None

    def submit(self, request: GenRequest) -> Generation:
        key = request_key(request)
        if key is None:
            gen = self.inner.submit(request)
            gen.timings.cache = "bypass"
            return gen
        if self.semantic is not None and not self._answered(key):
            return Lookup(request, key, self)
        return self.run(request, key)

    def _answered(self, key: Key) -> bool:
        """Whether an exact hit or a flight to follow serves `key` with no lookup."""
        return (self.cache is not None and self.cache.get(key) is not None) or (self.merge and key in self.flights)

    def run(self, request: GenRequest, key: Key) -> Generation:
        """Steps 1, 2 and 4 of the module docstring: exact hit, follower, or a new flight."""
        stored = self.cache.get(key) if self.cache is not None else None
        if stored is not None:
            return _hit(request, stored)
        flight = self.flights.get(key) if self.merge else None
        if flight is not None:
            return flight.add(request, leader=False)
        flight = Flight(self.inner.submit(request), key, self)
        if self.merge:
            self.flights[key] = flight
        return flight.add(request, leader=True)

    def landed(self, flight: Flight, stored: Stored | None) -> None:
        """A flight ended (finished, failed or abandoned): no more followers; cache it."""
        if self.flights.get(flight.key) is flight:
            del self.flights[flight.key]
        if stored is not None and self.cache is not None:
            self.cache.put(flight.key, stored)


def _hit(request: GenRequest, stored: Stored, timings: Timings | None = None) -> Generation:
    """A generation whose whole output is already queued: it streams without waiting."""
    gen = Generation(request=request, timings=timings or Timings(cache="exact"))
    _replay(gen, stored)
    return gen


def _replay(gen: Generation, stored: Stored) -> None:
    gen.output_tokens = stored.output_tokens
    for event in stored.events:
        gen.queue.put_nowait(event)


class Lookup(Generation):
    """A request that may hit the semantic cache (step 3 of the module docstring).

    Its events come from `task`: embed the prompt text (the byte-level tokenizer's ids
    decoded back: for chat, the rendered chat prompt), look it up under the request's
    parameters, then replay the match or forward the events of the generation that runs.
    """

    def __init__(self, request: GenRequest, key: Key, backend: SharedBackend):
        super().__init__(request=request, timings=Timings(cache=PENDING))
        self.key = key
        self.backend = backend
        self.inner: Generation | None = None
        self.task = asyncio.ensure_future(self._run())

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            if self.inner is not None:
                self.inner.cancel()
            self.task.cancel()

    def chunk_sent(self, t_ns: int) -> None:
        if self.inner is not None:
            self.inner.chunk_sent(t_ns)

    def finish(self, t_done_ns: int) -> None:
        if self.inner is not None:
            self.inner.finish(t_done_ns)

    async def _run(self) -> None:
        try:
            await self._lookup_then_serve()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an embedding failure fails this request, not the server
            log.exception("semantic lookup failed")
            self.queue.put_nowait(Event("", "error", error=f"semantic lookup failed: {type(exc).__name__}"))

    async def _lookup_then_serve(self) -> None:
        from serving.semantic import prompt_hash

        b, params = self.backend, params_key(self.request)
        # Only deterministic requests (a params key) reach here, and only with the semantic cache on.
        assert params is not None and b.embedder is not None and b.semantic is not None
        text = tokenizer.decode(self.request.prompt_ids)
        vec, embed_ms = await b.embedder.embed_one(text)
        match, hit = b.semantic.lookup(params, vec, b.threshold)
        b.metrics.count_lookup(embed_ms, hit)
        if hit and match is not None:
            self.timings = Timings(cache="semantic", embed_ms=embed_ms, semantic_similarity=match.similarity,
                                   semantic_match=match.prompt_hash)
            b.metrics.count_outcome("semantic", levers=True)
            _replay(self, match.stored)
            return
        self.inner = b.run(self.request, self.key)
        b.metrics.count_outcome(self.inner.timings.cache, levers=True)
        history: list[Event] = []
        async for event in self.inner.events():
            history.append(event)
            self.output_tokens = self.inner.output_tokens
            if event.finish_reason is not None:  # timings before the final event: the API reads them then
                self.timings = dataclasses.replace(self.inner.timings, embed_ms=embed_ms)
                if event.finish_reason in ("stop", "length"):
                    b.semantic.put(params, prompt_hash(text), vec, Stored(tuple(history), self.output_tokens))
            self.queue.put_nowait(event)
