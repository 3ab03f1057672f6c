"""The worker's spec file: everything one load-generator process needs for one step.

Pure pydantic, so the orchestrator can build and check a spec without importing Locust.
Also the worker's exit codes and its stdout line formats, the other half of its contract.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from servelab.config import LoadConfig

EXIT_OK = 0  # the step ran (request failures are data, not an exit code); also after SIGTERM
EXIT_CRASH = 1  # an unexpected error, or the spool could not be written
EXIT_BAD_SPEC = 2  # the spec file is missing or invalid
EXIT_UNREACHABLE = 3  # the warm-up request could not connect: "cannot reach URL: reason"
EXIT_REJECTED = 4  # the warm-up request got a 4xx that every request would get (404, 401, ...)


class WorkerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    step: int = Field(ge=0)
    producer: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="e.g. w0; names the spool files")
    target_url: str = Field(description="base URL, e.g. http://127.0.0.1:8000 (the /v1/... path is added)")
    builtin: bool = False
    load: LoadConfig
    spool_dir: str
    api_key_env: str | None = Field(None, description="name of an env var holding a bearer token")
    # Scaling out (docs/architecture.md): worker `shard` of `shards` sends open-loop arrivals
    # shard, shard + shards, ...; all shards share one t0, given on this machine's
    # CLOCK_MONOTONIC (`t0_ns`) or, across machines, as wall-clock ns (`t0_wall_ns`).
    shard: int = Field(0, ge=0)
    shards: int = Field(1, ge=1)
    first_user: int = Field(0, ge=0, description="closed loop: user_id of this worker's first user")
    t0_ns: int | None = Field(None, description="perf_counter_ns() at which the load starts")
    t0_wall_ns: int | None = Field(None, description="time.time_ns() at which the load starts")


def progress_line(elapsed_s: float, duration_s: float, sent: int, done: int, errors: int) -> dict:
    """`{"progress": {...}}`, printed about every 0.5 s; done counts every finished request,
    errors the finished ones whose status is not ok, inflight = sent - done."""
    return {"progress": {"elapsed_s": round(elapsed_s, 3), "duration_s": duration_s, "sent": sent,
                         "done": done, "errors": errors, "inflight": sent - done}}


def done_line(sent: int, completed: int, errors: int) -> dict:
    """`{"done": {...}}`, the last stdout line; completed = status ok, errors = all others."""
    return {"done": {"sent": sent, "completed": completed, "errors": errors}}
