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
3. otherwise the request runs (`cache: "miss"`); its finished output ("stop"/"length",
   not aborted or failed) is stored in the exact cache.

A `Flight` is one running generation and the responses reading it. A reader whose client
leaves only detaches: the generation goes on while any reader remains, and is cancelled
when the last one leaves. Non-deterministic requests bypass both levers (`cache:
"bypass"`). Everything here runs on the event-loop thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from servelab.config import ServerConfig
from serving.cache import Key, ResultCache, Stored, request_key
from serving.generation import Backend, Event, GenRequest, Generation

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
    """Wraps a backend with the exact cache and/or in-flight merging (module docstring)."""

    def __init__(self, inner: Backend, cfg: ServerConfig):
        self.inner = inner
        self.params = inner.params
        self.cache = ResultCache(cfg.cache_size, cfg.cache_ttl_s) if cfg.exact_cache else None
        self.merge = cfg.merge_inflight
        self.flights: dict[Key, Flight] = {}

    def start(self) -> None:
        self.inner.start()

    def close(self) -> None:
        self.inner.close()

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


def _hit(request: GenRequest, stored: Stored) -> Generation:
    """A generation whose whole output is already queued: it streams without waiting."""
    gen = Generation(request=request)
    gen.timings.cache = "exact"
    gen.output_tokens = stored.output_tokens
    for event in stored.events:
        gen.queue.put_nowait(event)
    return gen
