"""The server's torch-profiler window: POST /v1/profiler/start, /stop, then /result.

start body (all optional): {"dir": folder for the trace, "name": trace file name}.
stop body (all optional): {"defer": true} stops collecting and returns at once
({"status": "stopped", "window_s", "trace_path", "pending": true}); the Chrome trace and
the operator table are then made by POST /v1/profiler/result, after the measured load.
{"discard": true} drops the window (used to warm the profiler up: torch's first start
takes over a second). Without either, stop returns the whole result at once.

The result is {"trace_path", "window_s", "operators": [...]}: the Chrome trace written by
`torch.profiler` (CPU activity, plus CUDA when available) and the top-N operators by self
time (`name`, `calls`, `self_cpu_us`, `self_cuda_us`, `cpu_total_us`, `cuda_total_us`).
Making it is the expensive part (measured on the 2-core machine, a 2 s window of the tiny
model under load: ~180k events, stop 0.7 s, building the event tree 12 s, aggregating
2 s, all holding the GIL): done during the load, it stalled every stream for tens of
seconds, hence `defer`. window_s counts collection only (start returned to stop called).

The engine runs in its own thread, so the profiler is started with `profile_all_threads`
(without it, torch records only the thread that called start). The server binds to a
local address for benchmarking; the trace name is reduced to a bare file name.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from serving.errors import ApiError

DEFAULT_DIR = Path(tempfile.gettempdir()) / "servelab-traces"


def _new_profiler():
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    try:
        from torch._C._profiler import _ExperimentalConfig

        return profile(activities=activities, experimental_config=_ExperimentalConfig(profile_all_threads=True))
    except (ImportError, TypeError):  # older torch: the calling thread only
        return profile(activities=activities)


def top_operators(prof: Any, n: int) -> list[dict[str, Any]]:
    """The n operators with the most self time (device time first when there is any), in us."""
    def dev(e: Any, name: str) -> float:
        return float(getattr(e, name.replace("cuda", "device"), None) or getattr(e, name, 0.0) or 0.0)

    rows = [{"name": e.key, "calls": int(e.count), "self_cpu_us": float(e.self_cpu_time_total),
             "self_cuda_us": dev(e, "self_cuda_time_total"), "cpu_total_us": float(e.cpu_time_total),
             "cuda_total_us": dev(e, "cuda_time_total")} for e in prof.key_averages()]
    rows.sort(key=lambda r: (r["self_cuda_us"], r["self_cpu_us"]), reverse=True)
    return rows[:n]


class ProfilerWindow:
    """At most one torch-profiler window at a time; a stopped one awaits /result until the
    next start (a client that stopped without fetching, e.g. an interrupted run, abandoned it)."""

    def __init__(self, top_n: int = 20):
        self.top_n = top_n
        self.prof: Any = None
        self.path: Path | None = None
        self.t0 = 0.0
        self.pending: tuple[Any, Path, float] | None = None  # a deferred stop's (prof, path, window_s)

    def start(self, directory: str | None, name: str | None) -> dict[str, Any]:
        if self.prof is not None:
            raise ApiError(409, "a profiler window is already running", code="profiler_busy")
        self.pending = None  # a stopped window whose result nobody fetched was abandoned
        folder = Path(directory) if directory else DEFAULT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / Path(name or f"trace-{time.time_ns()}.json").name
        self.prof = _new_profiler()
        self.prof.start()
        self.t0 = time.perf_counter()
        return {"status": "started", "trace_path": str(self.path)}

    async def stop(self, defer: bool = False, discard: bool = False) -> dict[str, Any]:
        if self.prof is None:
            raise ApiError(409, "no profiler window is running", code="profiler_idle")
        window_s = time.perf_counter() - self.t0
        prof, path, self.prof = self.prof, self.path, None
        assert path is not None, "set with prof"
        prof.stop()  # same thread as start (the event loop)
        if discard:
            return {"status": "discarded", "window_s": window_s}
        if defer:
            self.pending = (prof, path, window_s)
            return {"status": "stopped", "trace_path": str(path), "window_s": window_s, "pending": True}
        return await self._finish(prof, path, window_s)

    async def result(self) -> dict[str, Any]:
        if self.pending is None:
            raise ApiError(409, "no stopped profiler window: POST /v1/profiler/stop with"
                           ' {"defer": true} first', code="profiler_idle")
        pending, self.pending = self.pending, None
        return await self._finish(*pending)

    async def _finish(self, prof: Any, path: Path, window_s: float) -> dict[str, Any]:
        # Export and aggregation take a while: keep them off the event loop.
        await asyncio.to_thread(prof.export_chrome_trace, str(path))
        ops = await asyncio.to_thread(top_operators, prof, self.top_n)
        return {"status": "stopped", "trace_path": str(path), "window_s": window_s, "operators": ops}


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object of a request body ({} when empty or not an object); ValueError if not JSON."""
    raw = await request.body()
    body = json.loads(raw) if raw.strip() else {}
    return body if isinstance(body, dict) else {}


def profiler_router(window: ProfilerWindow | None = None) -> APIRouter:
    """The two profiler routes over one ProfilerWindow."""
    window = window or ProfilerWindow()
    router = APIRouter()

    @router.post("/v1/profiler/start")
    async def start(request: Request) -> Response:
        try:
            body = await _body(request)
            return JSONResponse(window.start(body.get("dir"), body.get("name")))
        except ValueError:
            return ApiError(400, "profiler start body must be JSON", code="invalid_json").response()
        except ApiError as exc:
            return exc.response()
        except OSError as exc:
            return ApiError(400, f"cannot write a trace there: {exc}", code="bad_trace_dir").response()

    @router.post("/v1/profiler/stop")
    async def stop(request: Request) -> Response:
        try:
            body = await _body(request)
            return JSONResponse(await window.stop(bool(body.get("defer")), bool(body.get("discard"))))
        except ValueError:
            return ApiError(400, "profiler stop body must be JSON", code="invalid_json").response()
        except ApiError as exc:
            return exc.response()

    @router.post("/v1/profiler/result")
    async def result() -> Response:
        try:
            return JSONResponse(await window.result())
        except ApiError as exc:
            return exc.response()

    return router
