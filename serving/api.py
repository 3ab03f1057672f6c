"""The HTTP API: an OpenAI-compatible FastAPI app over one backend (engine or calibration).

Routes: POST /v1/completions, POST /v1/chat/completions (streaming and not),
GET /v1/models, GET /health, GET /metrics, the torch-profiler window
(POST /v1/profiler/start, /stop, /result: serving/profiler.py) and async jobs
(POST /v1/jobs, GET/DELETE /v1/jobs/{id}: serving/jobs.py). Request bodies and headers are never logged.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from servelab.config import ServerConfig
from serving import prompts, schemas
from serving.admission import AdmissionController, Admitted, load_api_keys
from serving.errors import ApiError, read_body
from serving.generation import GENERATED, Backend, Generation, GenRequest
from serving.jobs import jobs_router
from serving.metrics import ServerMetrics
from serving.profiler import profiler_router
from serving.responses import SSE_DONE, ObjectFactory, sse, timing_headers, usage
from serving.stream import TimedSSEResponse, run_unless_disconnected


def build_backend(cfg: ServerConfig) -> Backend:
    """The token producer for this setup; torch is imported only when a model is needed."""
    if cfg.calibration:
        from serving.calibration import CalibrationBackend

        return CalibrationBackend(cfg)
    from serving.engine import Engine

    return Engine(cfg)


def levers_on(cfg: ServerConfig) -> bool:
    """Whether any result lever is on (then `SharedBackend` wraps the backend)."""
    return cfg.exact_cache or cfg.merge_inflight or cfg.semantic_cache


def with_levers(cfg: ServerConfig, backend: Backend, metrics: ServerMetrics | None = None) -> Backend:
    """The backend behind the result levers (exact cache, merging, semantic cache) when any is on."""
    if not levers_on(cfg):
        return backend
    from serving.shared import SharedBackend

    return SharedBackend(backend, cfg, metrics)


def build_degrade_backend(cfg: ServerConfig) -> Backend | None:
    """The smaller model that serves degraded requests (`degrade_model`), or None."""
    if cfg.degrade_model is None:
        return None
    # Without result levers: the main backend's caches answer first (admission never
    # degrades a request the exact cache can answer).
    return build_backend(cfg.model_copy(update={"model": cfg.degrade_model}))


def create_app(cfg: ServerConfig, backend: Backend | None = None) -> FastAPI:
    """The app for one setup; builds (and warms) the backend now unless one is given."""
    keys = load_api_keys(cfg) if cfg.admission else {}  # a bad key file fails before the model is built
    backend = backend if backend is not None else build_backend(cfg)
    metrics = ServerMetrics(getattr(backend, "prefiller", None))  # the engine's; calibration has none
    backend = with_levers(cfg, backend, metrics)
    degrade_backend = build_degrade_backend(cfg)
    waiting = getattr(backend, "waiting", None)
    if waiting is not None:
        metrics.queue_depth.set_function(waiting)
    admission = None
    if cfg.admission:
        degrade_waiting = getattr(degrade_backend, "waiting", None) or (lambda: 0)
        admission = AdmissionController(cfg, waiting or (lambda: 0), keys, metrics, degrade_waiting)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        backend.start()
        if degrade_backend is not None:
            degrade_backend.start()
        yield
        backend.close()
        if degrade_backend is not None:
            degrade_backend.close()

    app = FastAPI(title="servelab reference server", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.backend = backend
    app.state.metrics = metrics
    _install_error_handlers(app)
    handler = _CompletionHandler(cfg, backend, metrics, admission, degrade_backend)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await handler.handle(request, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await handler.handle(request, chat=True)

    @app.get("/v1/models")
    async def models() -> dict:
        card = {"id": cfg.model, "object": "model", "created": 0, "owned_by": "servelab"}
        return {"object": "list", "data": [card]}

    @app.get("/health")
    async def health() -> dict:
        health = {"status": "ok", "model": cfg.model, "params": backend.params, "calibration": cfg.calibration}
        if admission is not None:  # tier names and the queue, never a key
            health.update(tiers=sorted(admission.tiers), queue_depth=admission.waiting())
        return health

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    app.include_router(profiler_router())
    app.include_router(jobs_router(cfg, handler, metrics.registry))
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Every error, routing ones included, leaves as OpenAI-style JSON."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return ApiError(exc.status_code, str(exc.detail), code=code).response()

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log (no request content in it); the client gets JSON.
        return ApiError(500, "internal server error", code="internal_error").response()


class _CompletionHandler:
    """Both completion endpoints: validate, submit, then stream or collect."""

    def __init__(self, cfg: ServerConfig, backend: Backend, metrics: ServerMetrics,
                 admission: AdmissionController | None = None, degrade_backend: Backend | None = None):
        self.cfg = cfg
        self.backend = backend
        self.metrics = metrics
        self.admission = admission
        self.degrade_backend = degrade_backend

    async def handle(self, request: Request, chat: bool) -> Response:
        t_recv_ns = time.perf_counter_ns()
        endpoint = "chat" if chat else "completions"
        try:
            body = await read_body(request, self.cfg.max_body_bytes)
            req: schemas.ChatRequest | schemas.CompletionRequest = (
                schemas.parse(body, schemas.ChatRequest) if chat else schemas.parse(body, schemas.CompletionRequest))
            gen_req, prompt_tokens = prompts.build(req, self.cfg, t_recv_ns)
            admitted = self._admit(request, gen_req)
        except ApiError as exc:
            self.metrics.count(endpoint, exc.status)
            return exc.response()
        if admitted is not None:
            gen_req = _apply(admitted, gen_req)
        backend, model = self._route(admitted)
        self.metrics.in_flight.inc()
        gen = backend.submit(gen_req)
        self._count(gen)
        reply = _Reply(gen, ObjectFactory(chat, model), prompt_tokens, self.metrics, admitted)
        if req.stream:
            self.metrics.count(endpoint, 200)
            return reply.stream(req.include_usage)
        try:
            response = await run_unless_disconnected(reply.collect(), request.receive)
        finally:
            gen.cancel()  # no-op when finished; stops the backend when the client left
            reply.done(time.perf_counter_ns())
        if response is None:  # the client left; nothing will be sent ("499" as nginx logs it)
            response = Response(status_code=499)
        self.metrics.count(endpoint, response.status_code)
        return response

    def _admit(self, request: Request, gen_req) -> Admitted | None:
        """The admission decision (raises the refusal), or None when admission is off."""
        return self.admit(request.headers.get("authorization"), gen_req)[1]

    def admit(self, authorization: str | None, gen_req: GenRequest) -> tuple[GenRequest, Admitted | None]:
        """Admission for one request (tier, rate limit, queue bound, degrade), raising the
        refusal; returns the request as admitted. Also for jobs, at submission."""
        if self.admission is None:
            return gen_req, None
        cached = getattr(self.backend, "cached", None)
        admitted = self.admission.admit(authorization, gen_req.max_tokens,
                                        cached=cached is not None and cached(gen_req))
        return _apply(admitted, gen_req), admitted

    def _count(self, gen: Generation) -> None:
        if gen.timings.cache != "lookup":  # a semantic lookup (shared.PENDING) counts its outcome once known
            self.metrics.count_outcome(gen.timings.cache, levers_on(self.cfg))

    def parse(self, body: bytes, chat: bool, t_recv_ns: int) -> tuple[schemas._Common, GenRequest, int]:
        """A request body validated as the endpoint would (ApiError if not): for jobs."""
        req: schemas.ChatRequest | schemas.CompletionRequest = (
            schemas.parse(body, schemas.ChatRequest) if chat else schemas.parse(body, schemas.CompletionRequest))
        gen_req, prompt_tokens = prompts.build(req, self.cfg, t_recv_ns)
        return req, gen_req, prompt_tokens

    def _route(self, admitted: Admitted | None):
        """(backend, model name) for an admitted request: the smaller model when degraded to it."""
        if admitted is not None and admitted.degraded == "model":
            return self.degrade_backend, self.cfg.degrade_model
        return self.backend, self.cfg.model

    async def complete(self, gen_req: GenRequest, prompt_tokens: int, chat: bool,
                       admitted: Admitted | None = None) -> dict:
        """Runs a validated (and admitted, see `admit`) request to its end through the backend
        (levers included) and returns the non-streaming body; ApiError (500) if the generation
        failed. Cancelling the awaiting task cancels the generation. Used by jobs."""
        backend, model = self._route(admitted)
        self.metrics.in_flight.inc()
        gen = backend.submit(gen_req)
        self._count(gen)
        reply = _Reply(gen, ObjectFactory(chat, model), prompt_tokens, self.metrics, admitted)
        try:
            return await reply.body()
        finally:
            gen.cancel()  # no-op when finished
            reply.done(time.perf_counter_ns())


def _apply(admitted: Admitted, req):
    """The request as admitted: its tier's priority, and the degraded max_tokens if any."""
    req = dataclasses.replace(req, priority=admitted.priority, protected=admitted.protected)
    if admitted.max_tokens is None:
        return req
    cap = admitted.max_tokens
    return dataclasses.replace(req, max_tokens=cap, min_tokens=min(req.min_tokens, cap))


class _Reply:
    """One response to one generation, in either shape."""

    def __init__(self, gen: Generation, factory: ObjectFactory, prompt_tokens: int, metrics: ServerMetrics,
                 admitted: Admitted | None = None):
        self.gen = gen
        self.factory = factory
        self.prompt_tokens = prompt_tokens
        self.metrics = metrics
        self.admitted = admitted
        self._first_sent = False

    def _final_timings(self) -> dict:
        """The `servelab` object of a finished generation, also recorded in the metrics;
        with admission on, it also says the request's `tier` and `degraded` (None or how)."""
        timings = self.gen.timings.as_dict(self.prompt_tokens, self.gen.output_tokens)
        if self.admitted is not None:
            timings.update(tier=self.admitted.tier, degraded=self.admitted.degraded)
        if timings["cache"] in GENERATED:  # the histograms describe generations run
            self.metrics.observe_done(timings)
        return timings

    def stream(self, include_usage: bool) -> TimedSSEResponse:
        parts = self._parts(include_usage)
        if self.gen.timings.cache == "exact":  # every event is stored: one write, not one per token
            parts = _coalesced(parts)
        return TimedSSEResponse(parts, self._sent, self.gen.cancel, self.done)

    async def _parts(self, include_usage: bool):
        timings = None
        async for event in self.gen.events():
            if event.error is not None:
                yield sse(ApiError(500, event.error).body()), False
                break
            chunk = self.factory.chunk(event.text, event.finish_reason)
            if event.finish_reason is not None:
                timings = self._final_timings()
                if not include_usage:
                    chunk["servelab"] = timings
            yield sse(chunk), bool(event.text)
        if include_usage and timings is not None:
            final = self.factory.usage_chunk(usage(self.prompt_tokens, self.gen.output_tokens))
            final["servelab"] = timings
            yield sse(final), False
        yield SSE_DONE, False

    def _sent(self, t_ns: int) -> None:
        self.gen.chunk_sent(t_ns)
        if not self._first_sent:
            self._first_sent = True
            self.metrics.ttft.observe((t_ns - self.gen.request.t_recv_ns) / 1e9)

    async def collect(self) -> Response:
        try:
            body = await self.body()
        except ApiError as exc:
            return exc.response()
        return JSONResponse(body, headers=timing_headers(body["servelab"]))

    async def body(self) -> dict:
        """The whole non-streaming body with its `servelab` timings; ApiError if it failed."""
        pieces, finish = [], "length"
        async for event in self.gen.events():
            if event.error is not None:
                raise ApiError(500, event.error, code="generation_failed")
            pieces.append(event.text)
            finish = event.finish_reason or finish
        timings = self._final_timings()
        body = self.factory.full("".join(pieces), finish, usage(self.prompt_tokens, self.gen.output_tokens))
        body["servelab"] = timings
        return body

    def done(self, t_done_ns: int) -> None:
        """The response is over (called once: by the stream, or by the handler)."""
        self.metrics.in_flight.dec()
        if self.gen.timings.cache in GENERATED:  # hits and followers generated nothing
            self.metrics.count_tokens(self.prompt_tokens, self.gen.output_tokens)
        self.gen.finish(t_done_ns)


async def _coalesced(parts):
    """All parts as one message. Only for a generation whose events are all queued already
    (an exact-cache hit): the loop never waits, and one send costs one socket write
    instead of one per token, so the stream goes as fast as the transport allows."""
    pieces = [part async for part in parts]
    yield b"".join(data for data, _ in pieces), any(content for _, content in pieces)
