"""The server's torch-profiler window: POST /v1/profiler/start, then POST /v1/profiler/stop.

start body (all optional): {"dir": folder for the trace, "name": trace file name}. stop
returns {"trace_path", "window_s", "operators": [...]}: the Chrome trace written by
`torch.profiler` (CPU activity, plus CUDA when available) and the top-N operators by self
time (`name`, `calls`, `self_cpu_us`, `self_cuda_us`, `cpu_total_us`, `cuda_total_us`).

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
    """At most one torch-profiler window at a time."""

    def __init__(self, top_n: int = 20):
        self.top_n = top_n
        self.prof: Any = None
        self.path: Path | None = None
        self.t0 = 0.0

    def start(self, directory: str | None, name: str | None) -> dict[str, Any]:
        if self.prof is not None:
            raise ApiError(409, "a profiler window is already running", code="profiler_busy")
        folder = Path(directory) if directory else DEFAULT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / Path(name or f"trace-{time.time_ns()}.json").name
        self.prof = _new_profiler()
        self.prof.start()
        self.t0 = time.perf_counter()
        return {"status": "started", "trace_path": str(self.path)}

    async def stop(self) -> dict[str, Any]:
        if self.prof is None:
            raise ApiError(409, "no profiler window is running", code="profiler_idle")
        prof, path, self.prof = self.prof, self.path, None
        prof.stop()  # same thread as start (the event loop)
        window_s = time.perf_counter() - self.t0
        # Export and aggregation take a while: keep them off the event loop.
        await asyncio.to_thread(prof.export_chrome_trace, str(path))
        ops = await asyncio.to_thread(top_operators, prof, self.top_n)
        return {"status": "stopped", "trace_path": str(path), "window_s": window_s, "operators": ops}


def profiler_router(window: ProfilerWindow | None = None) -> APIRouter:
    """The two profiler routes over one ProfilerWindow."""
    window = window or ProfilerWindow()
    router = APIRouter()

    @router.post("/v1/profiler/start")
    async def start(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
            body = body if isinstance(body, dict) else {}
            return JSONResponse(window.start(body.get("dir"), body.get("name")))
        except ValueError:
            return ApiError(400, "profiler start body must be JSON", code="invalid_json").response()
        except ApiError as exc:
            return exc.response()
        except OSError as exc:
            return ApiError(400, f"cannot write a trace there: {exc}", code="bad_trace_dir").response()

    @router.post("/v1/profiler/stop")
    async def stop() -> Response:
        try:
            return JSONResponse(await window.stop())
        except ApiError as exc:
            return exc.response()

    return router
