"""The one typed config model: sweep files, CLI flags and environment all resolve to these.

Pure pydantic, no heavy imports: the server process, the load-generator process and the CLI
all parse the same JSON with these classes, and the resolved `RunConfig` is stored with
every run (`RunConfig.model_dump(mode="json")`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_PREFIX = "SERVELAB_"
DEFAULT_STORE = "servelab.duckdb"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Model):
    """One setup of the built-in reference server (the levers grow here)."""

    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    model: str = Field("small", description="named model size: tiny, small, base")
    device: Literal["cpu", "cuda"] = "cpu"
    precision: Literal["fp32", "bf16", "fp16", "int8"] = "fp32"
    threads: int = Field(1, ge=1, le=256, description="torch intra-op threads")
    max_context: int = Field(2048, ge=16, le=1 << 16, description="prompt + output tokens")
    max_tokens_limit: int = Field(4096, ge=1, description="largest max_tokens accepted")
    max_body_bytes: int = Field(4 << 20, ge=1024, description="larger request bodies get 413")
    seed: int = 0
    # Calibration mode: no model; every stream has exactly these timings.
    calibration: bool = False
    calib_ttft_ms: float = Field(50.0, ge=0)
    calib_itl_ms: float = Field(10.0, ge=0)
    calib_log: str | None = Field(None, description="JSONL file of true send times")


class LoadConfig(_Model):
    """How load is offered to the target during one step."""

    mode: Literal["closed", "open"] = "closed"
    users: int = Field(1, ge=1, le=100_000, description="closed loop: concurrent users")
    rate: float | None = Field(None, gt=0, description="open loop: requests per second")
    arrival: Literal["poisson", "constant"] = "poisson"
    duration_s: float = Field(10.0, gt=0, le=7 * 24 * 3600)
    max_requests: int | None = Field(None, ge=1)
    warmup_s: float | None = Field(None, ge=0, description="default: 10% of duration")
    drain_s: float = Field(30.0, ge=0, description="wait for in-flight requests after the step")
    max_tokens: int = Field(64, ge=1)
    prompt_tokens: int = Field(128, ge=1)
    prompt_format: Literal["auto", "text", "token_ids"] = "auto"
    endpoint: Literal["completions", "chat"] = "completions"
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout")
    ignore_eos: bool = True
    seed: int = 0
    model: str | None = Field(None, description="model name sent to the target")

    @model_validator(mode="after")
    def _mode_matches(self) -> LoadConfig:
        if self.mode == "open" and self.rate is None:
            raise ValueError("open-loop load needs a rate (requests per second)")
        return self

    @property
    def warmup(self) -> float:
        return self.duration_s * 0.1 if self.warmup_s is None else min(self.warmup_s, self.duration_s)


class SLOTerm(_Model):
    """One term of an SLO: `metric_pP <= threshold_ms`, e.g. ttft_p99<=500ms."""

    metric: Literal["ttft", "itl", "tpot", "e2e", "ttft_sched"]
    percentile: float = Field(ge=0, le=100)
    threshold_ms: float = Field(gt=0)


class RunConfig(_Model):
    """Everything that defines one run; stored, resolved, with the run."""

    target: str = Field("builtin", description="'builtin' or an OpenAI-compatible base URL")
    label: str | None = None
    load: LoadConfig = Field(default_factory=LoadConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    slo: list[SLOTerm] = Field(default_factory=list)
