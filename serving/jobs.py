"""Async jobs: submit a completion now, fetch its result later.

    POST   /v1/jobs            {"endpoint": "completions" | "chat", "body": {...usual request}}
                               -> 202 {id, object: "job", status: "queued", created}, Location
    GET    /v1/jobs/{id}       -> the job; `?wait=S` long-polls up to S s (at most job_wait_max_s)
    DELETE /v1/jobs/{id}       -> cancels it if pending, then forgets it
    POST   /v1/jobs/{id}/cancel -> cancels it if pending (409 once finished)

The body is validated exactly as the sync endpoint would (400 naming `body.<field>`), at
submit time; `stream: true` is refused, a job has nothing to stream. A job then runs
through the same backend as the sync endpoints (`_CompletionHandler.complete`), so
batching, the exact cache and merging apply. Status: queued (waiting for one of
`job_concurrency` slots) -> running (handed to the backend) -> succeeded, failed or
cancelled. A finished job carries `result`, the non-streaming completion object with its
`servelab` timings plus `job_queue_ms` (submit to start), and its wall-clock
`submitted_at`, `started_at`, `finished_at` (unix seconds).

Bounds: at most `max_jobs` queued + running (more: 429 with Retry-After); a finished job
is kept `job_ttl_s` seconds, then GET says 404. Everything runs on the event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, Request
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.responses import JSONResponse, Response

from servelab.config import ServerConfig
from serving.errors import ApiError, read_body

PENDING = ("queued", "running")


class JobRequest(BaseModel):
    """The submit body: which endpoint, and that endpoint's usual request body."""

    model_config = ConfigDict(extra="forbid", strict=True)
    endpoint: Literal["completions", "chat"] = "completions"
    body: dict[str, Any]


@dataclass
class Job:
    id: str
    endpoint: str
    created: int
    submitted_at: float
    status: str = "queued"
    started_at: float | None = None
    finished_at: float | None = None
    expires: float = 0.0  # time.monotonic() after which a finished job is forgotten
    result: dict | None = None
    error: dict | None = None
    task: asyncio.Task | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def view(self) -> dict:
        out = {"id": self.id, "object": "job", "endpoint": self.endpoint, "status": self.status,
               "created": self.created, "submitted_at": self.submitted_at,
               "started_at": self.started_at, "finished_at": self.finished_at}
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


class JobMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.submitted = Counter("servelab_jobs_submitted", "Jobs accepted (202)", registry=registry)
        self.rejected = Counter("servelab_jobs_rejected", "Jobs refused because max_jobs were pending",
                                registry=registry)
        self.finished = Counter("servelab_jobs_finished", "Jobs finished, by final status "
                                "(succeeded, failed, cancelled)", ["status"], registry=registry)
        self.pending = Gauge("servelab_jobs_pending", "Jobs queued or running", registry=registry)


class JobStore:
    """The jobs of one server: pending ones bounded by `max_jobs`, finished ones kept `ttl_s`."""

    def __init__(self, cfg: ServerConfig, handler, metrics: JobMetrics):
        self.cfg, self.handler, self.metrics = cfg, handler, metrics
        self.jobs: dict[str, Job] = {}
        self.finished: deque[Job] = deque()  # in finishing order, so expiry pops from the left
        self.pending = 0
        self.slots = asyncio.Semaphore(cfg.job_concurrency)

    def submit(self, raw: bytes, authorization: str | None = None) -> Job:
        t_recv_ns = time.perf_counter_ns()
        req = _job_request(raw)
        chat = req.endpoint == "chat"
        try:
            parsed, gen_req, prompt_tokens = self.handler.parse(json.dumps(req.body).encode(), chat, t_recv_ns)
        except ApiError as exc:
            exc.param = f"body.{exc.param}" if exc.param else "body"
            raise
        if parsed.stream:
            raise ApiError(400, "a job cannot stream: drop stream or use the endpoint itself",
                           param="body.stream", code="stream_not_supported")
        self.expire()
        if self.pending >= self.cfg.max_jobs:
            self.metrics.rejected.inc()
            raise ApiError(429, f"{self.pending} jobs are pending, the limit is {self.cfg.max_jobs}",
                           code="too_many_jobs")
        # The key's tier, rate limit, queue bound and degrade rules apply at submission.
        gen_req, admitted = self.handler.admit(authorization, gen_req)
        now = time.time()
        job = Job(id="job-" + uuid.uuid4().hex[:24], endpoint=req.endpoint, created=int(now), submitted_at=now)
        self.jobs[job.id] = job
        self.pending += 1
        self.metrics.submitted.inc()
        self.metrics.pending.inc()
        job.task = asyncio.ensure_future(self._run(job, gen_req, prompt_tokens, chat, admitted))
        # A callback, not a `finally`: a task cancelled before its first step never runs its body.
        job.task.add_done_callback(lambda task: self._land(job, task))
        return job

    async def _run(self, job: Job, gen_req, prompt_tokens: int, chat: bool, admitted=None) -> None:
        """Waits for a slot, then runs the request; a cancel stops it wherever it is (the
        backend is told by `complete`)."""
        t_submit_ns = gen_req.t_recv_ns
        async with self.slots:
            job.status, job.started_at = "running", time.time()
            t_start_ns = time.perf_counter_ns()
            # The backend's queue_ms starts at its own submit; the wait for a slot is job_queue_ms.
            try:
                result = await self.handler.complete(dataclasses.replace(gen_req, t_recv_ns=t_start_ns),
                                                     prompt_tokens, chat, admitted)
            except ApiError as exc:
                job.status, job.error = "failed", exc.body()["error"]
                return
            result["servelab"]["job_queue_ms"] = round((t_start_ns - t_submit_ns) / 1e6, 3)
            job.status, job.result = "succeeded", result

    def _land(self, job: Job, task: asyncio.Task) -> None:
        """The job's task ended (done, failed or cancelled): count it, start its TTL."""
        if not task.cancelled() and task.exception() is not None:  # a bug: the job fails, not the server
            job.status, job.error = "failed", ApiError(500, "internal server error", code="internal_error").body()["error"]
        elif job.status in PENDING:
            job.status = "cancelled"
        job.finished_at = time.time()
        job.expires = time.monotonic() + self.cfg.job_ttl_s
        self.pending -= 1
        self.metrics.pending.dec()
        self.metrics.finished.labels(status=job.status).inc()
        self.finished.append(job)
        job.done.set()

    def expire(self) -> None:
        now = time.monotonic()
        while self.finished and self.finished[0].expires <= now:
            self.jobs.pop(self.finished.popleft().id, None)

    def get(self, job_id: str) -> Job:
        self.expire()
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id!r} (unknown, deleted, or its result expired)",
                           param="id", code="job_not_found")
        return job

    async def cancel(self, job: Job) -> None:
        """Cancels a pending job and waits until it has landed as `cancelled`."""
        if job.status in PENDING and job.task is not None:
            job.task.cancel()
            await job.done.wait()

    async def wait(self, job: Job, wait_s: float) -> None:
        if job.status in PENDING and wait_s > 0:
            try:
                await asyncio.wait_for(job.done.wait(), min(wait_s, self.cfg.job_wait_max_s))
            except asyncio.TimeoutError:
                pass


def _job_request(raw: bytes) -> JobRequest:
    try:
        return JobRequest.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "json_invalid":
            raise ApiError(400, f"request body is not valid JSON: {err['msg']}", code="invalid_json") from None
        where = ".".join(str(p) for p in err["loc"])
        raise ApiError(400, f"{where}: {err['msg']}" if where else err["msg"],
                       param=str(err["loc"][0]) if err["loc"] else None) from None


def _wait_s(request: Request) -> float:
    text = request.query_params.get("wait")
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise ApiError(400, f"wait must be a number of seconds >= 0, not {text!r}", param="wait")
    return value


def jobs_router(cfg: ServerConfig, handler, registry: CollectorRegistry) -> APIRouter:
    """The job routes over one JobStore; `handler` parses and completes requests
    (`_CompletionHandler` in serving/api.py)."""
    store = JobStore(cfg, handler, JobMetrics(registry))
    router = APIRouter()

    @router.post("/v1/jobs")
    async def submit(request: Request) -> Response:
        try:
            job = store.submit(await read_body(request, cfg.max_body_bytes), request.headers.get("authorization"))
        except ApiError as exc:
            resp = exc.response()
            if exc.status == 429 and "retry-after" not in resp.headers:  # a rate limit says its own
                resp.headers["Retry-After"] = "1"
            return resp
        view = {k: v for k, v in job.view().items() if k in ("id", "object", "status", "created", "endpoint")}
        return JSONResponse(view, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    @router.get("/v1/jobs/{job_id}")
    async def get(job_id: str, request: Request) -> Response:
        try:
            wait_s = _wait_s(request)
            job = store.get(job_id)
        except ApiError as exc:
            return exc.response()
        await store.wait(job, wait_s)
        return JSONResponse(job.view())

    @router.post("/v1/jobs/{job_id}/cancel")
    async def cancel(job_id: str) -> Response:
        try:
            job = store.get(job_id)
            if job.status not in PENDING:
                raise ApiError(409, f"job {job_id} already {job.status}", param="id", code="job_finished")
        except ApiError as exc:
            return exc.response()
        await store.cancel(job)
        return JSONResponse(job.view())

    @router.delete("/v1/jobs/{job_id}")
    async def delete(job_id: str) -> Response:
        try:
            job = store.get(job_id)
        except ApiError as exc:
            return exc.response()
        await store.cancel(job)
        store.jobs.pop(job.id, None)
        return JSONResponse({**job.view(), "deleted": True})

    return router
