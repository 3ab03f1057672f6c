"""The engine: one worker thread runs generations in priority order (FIFO within one).

With `batching="none"` it runs them one at a time (below); with "static" or "continuous"
the same thread runs `serving.batching.BatchLoop`, which decodes many at once.

The worker runs the model outside the event loop (torch releases the GIL inside ops, so
the loop keeps streaming other responses) and hands each token to its request's asyncio
queue with `loop.call_soon_threadsafe`. Per request it measures queue, prefill and decode
time. A cancelled request (the client left) is dropped before it starts, or stops at its
next decode step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import torch

from servelab.config import ServerConfig
from serving import sampling, tokenizer
from serving.generation import Event, GenRequest, Generation
from serving.jobqueue import JobQueue
from serving.model import build_model
from serving.prefix import Prefiller, PrefixStore
from serving.stops import StopMatcher

log = logging.getLogger(__name__)


class EngineGeneration(Generation):
    """A generation fed from the worker thread."""

    def __init__(self, request: GenRequest, loop: asyncio.AbstractEventLoop):
        super().__init__(request=request)
        self.loop = loop
        self.t_enqueue_ns = time.perf_counter_ns()

    def push(self, event: Event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the loop closed (server shut down): nobody is listening
            pass


class Engine:
    """Owns the model, its KV cache and the worker thread."""

    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        torch.set_num_threads(cfg.threads)
        self.model = build_model(cfg.model, cfg.max_context, cfg.device, cfg.precision, cfg.seed)
        self.params = self.model.param_count()
        store = PrefixStore(cfg.prefix_block, cfg.prefix_cache_tokens) if cfg.prefix_cache else None
        self.prefiller = Prefiller(self.model, store, cfg.device)  # prompt prefills, with reuse or not
        # One row per running request, reused: each request overwrites its row from position 0.
        self.batched = cfg.batching != "none"
        self.cache = self.model.new_cache(batch=cfg.max_batch_size if self.batched else 1)
        self.banned = ~sampling.allowed_mask(cfg.device)
        self.jobs = JobQueue()  # EngineGeneration, or None to stop
        self.closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: EngineGeneration | None = None
        self._warm_up()

    def _warm_up(self) -> None:
        """First calls allocate and pick kernels; pay that before announcing readiness."""
        with torch.inference_mode():
            self.model(torch.tensor([[tokenizer.BOS] * 8], device=self.cfg.device), self.cache, 0)
            for pos in range(8, 12):
                self.model(torch.tensor([[65]], device=self.cfg.device), self.cache, pos)
            # A chunk after cached positions (a prefix hit's suffix) takes the masked path.
            self.model(torch.tensor([[65] * 4], device=self.cfg.device), self.cache, 12)
            if self.batched:  # the per-row-position decode path, at full batch
                b = self.cfg.max_batch_size
                tokens = torch.full((b, 1), 65, device=self.cfg.device)
                for pos in range(8, 12):
                    self.model(tokens, self.cache, torch.full((b,), pos, device=self.cfg.device))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="servelab-engine", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.closing.set()  # the batch loop aborts its rows at the next step
        current = self._current
        if current is not None:
            current.cancel()  # shutting down: stop at the next decode step
        self.jobs.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def submit(self, request: GenRequest) -> EngineGeneration:
        gen = EngineGeneration(request, asyncio.get_running_loop())
        self.jobs.put(gen)
        return gen

    def waiting(self) -> int:
        """Requests queued and not yet taken by the worker (cancelled ones until skipped)."""
        return self.jobs.qsize()

    def _work(self) -> None:
        torch.set_num_threads(self.cfg.threads)  # per thread under OpenMP
        if self.batched:
            from serving.batching import BatchLoop

            with torch.inference_mode():
                BatchLoop(self).run()
            return
        while (gen := self.jobs.get()) is not None:
            if gen.cancelled:
                continue  # its client is gone and nobody reads its queue
            self._current = gen
            try:
                with torch.inference_mode():
                    self._generate(gen)
            except Exception as exc:  # a bug must fail one request, not the server
                log.exception("generation failed")
                gen.push(Event("", "error", error=f"generation failed: {type(exc).__name__}"))
            finally:
                self._current = None

    def _generate(self, gen: EngineGeneration) -> None:
        req, dev = gen.request, self.cfg.device
        t_start = time.perf_counter_ns()
        gen.timings.queue_ms = (t_start - gen.t_enqueue_ns) / 1e6
        rng = sampling.new_generator(req.seed, dev)
        stops = StopMatcher(req.stop)
        (done,) = self.prefiller.run(self.cache, 0, [req.prompt_ids])
        self.note_prefix(gen, done.reused)
        token = self._sample(done.logits, req, rng, produced=0)
        t_first = time.perf_counter_ns()
        gen.timings.prefill_ms = (t_first - t_start) / 1e6
        pos = len(req.prompt_ids)
        while True:
            if self._step(gen, token, stops, t_first):
                return
            if gen.cancelled:  # end the stream for any reader still there (shutdown)
                self._finish(gen, "", "abort", t_first)
                return
            logits = self.model(torch.tensor([[token]], device=dev), self.cache, pos)[0, -1]
            pos += 1
            token = self._sample(logits, req, rng, produced=gen.output_tokens)

    def note_prefix(self, gen: EngineGeneration, reused: int) -> None:
        """Timings of a prefill with prefix reuse on: tokens reused; `cache: "prefix"` when
        some were and no result lever already named the outcome (bypass stays bypass)."""
        if self.prefiller.store is None:
            return
        gen.timings.prefix_tokens = reused
        if reused and gen.timings.cache == "miss":
            gen.timings.cache = "prefix"

    def _sample(self, logits, req: GenRequest, rng, produced: int) -> int:
        allow_eos = not req.ignore_eos and produced >= req.min_tokens
        return sampling.sample(logits, self.banned, req.temperature, req.top_p, rng, allow_eos)

    def _step(self, gen: EngineGeneration, token: int, stops: StopMatcher, t_first: int) -> bool:
        """Emit one sampled token; True when the generation is finished."""
        if token == tokenizer.EOS:
            return self._finish(gen, stops.flush(), "stop", t_first)
        gen.output_tokens += 1
        text, stopped = stops.feed(tokenizer.decode_one(token))
        if stopped:
            return self._finish(gen, text, "stop", t_first)
        if gen.output_tokens >= gen.request.max_tokens:
            return self._finish(gen, text + stops.flush(), "length", t_first)
        if text:
            gen.push(Event(text))
        return False

    def _finish(self, gen: EngineGeneration, text: str, reason: str, t_first: int) -> bool:
        # Timings are set before the final event is queued: the HTTP layer reads them then.
        gen.timings.decode_ms = (time.perf_counter_ns() - t_first) / 1e6
        gen.push(Event(text, reason))
        return True
