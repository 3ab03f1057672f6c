"""The sweep spec file: setups x workload x a load search, validated by the one typed model.

A spec is YAML or JSON (docs: README "Sweeps", example: data/sweeps/levers-tiny.yaml):

    name: levers-small
    slo: "ttft_p99<=500ms,tpot_p99<=50ms"
    duration_s: 20            # per measured point (warm-up excluded as in any run)
    repeats: 3                # independent repeats (a fresh seed each)
    search: {kind: capacity, low: 0.5, high: 64, rel_tol: 0.05}
    workload: {max_tokens: 64, prompt_tokens: 256}     # any run's load fields
    setups:
      base:       {server: {model: small, batching: none}}
      continuous: {server: {model: small, batching: continuous, max_batch_size: 16}}
      url-a:      {target: "http://127.0.0.1:9000", price_per_hour: 1.0}
      vllm-fp32:  {engine: vllm, args: "--model /models/m --dtype float32", python: /envs/vllm/bin/python}

Every field is checked before anything runs: an unknown key anywhere is one error line
naming the key and the file (`servelab/cli.py` turns UserError into that line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from servelab.config import LoadConfig, RunConfig, SamplerConfig, ServerConfig, SLOTerm
from servelab.errors import UserError
from servelab.headers import REDACTED, redacted

# Fields of `workload` that the sweep itself decides (per point) or that would make a
# point several loads: the search owns the load, the spec owns duration and seed.
_SWEEP_OWNED = {"mode", "rate", "users", "duration_s", "warmup_s", "drain_s", "seed", "rate_end",
                "rate_steps", "max_requests"}
_RATE_ARRIVALS = {"poisson", "constant", "gamma"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CapacitySearch(_Model):
    """Find the highest open-loop rate that meets the SLO (analysis/capacity.py)."""

    kind: Literal["capacity"]
    low: float = Field(gt=0, description="lowest rate the search may measure, req/s")
    high: float = Field(gt=0, description="highest rate the search may measure, req/s")
    rel_tol: float = Field(0.05, gt=0, lt=1, description="stop when the bracket's hi/lo - 1 is at most this")
    max_probes: int = Field(8, ge=2, le=50, description="points per repeat at most")

    @model_validator(mode="after")
    def _ordered(self) -> CapacitySearch:
        if self.low >= self.high:
            raise ValueError(f"search low ({self.low:g}) must be below high ({self.high:g})")
        return self


class GridSearch(_Model):
    """Measure every listed load: open-loop `rates` or closed-loop `users` (exactly one)."""

    kind: Literal["grid"]
    rates: list[Annotated[float, Field(gt=0)]] | None = None
    users: list[Annotated[int, Field(ge=1)]] | None = None

    @model_validator(mode="after")
    def _one_axis(self) -> GridSearch:
        if (self.rates is None) == (self.users is None):
            raise ValueError("a grid search lists either rates (open loop) or users (closed loop)")
        if not (self.rates or self.users):
            raise ValueError("a grid search needs at least one load")
        return self

    @property
    def loads(self) -> list[float]:
        return sorted(float(x) for x in (self.rates or self.users or []))


EngineKind = Literal["vllm", "sglang", "llamacpp", "tgi", "transformers", "command"]


class SetupSpec(_Model):
    """One candidate: the built-in server with these knobs, a server at a URL, or an engine
    that the sweep starts for this setup's points (servelab/engines.py) and stops after."""

    server: ServerConfig | None = None
    target: str | None = None
    engine: EngineKind | None = None
    args: str = Field("", description="engine: its own arguments (command: the whole line, with {port})")
    python: str | None = Field(None, description="engine: the Python of its own environment")
    ready_timeout_s: float = Field(600.0, gt=0, description="engine: seconds to wait until it answers")
    hardware: str | None = Field(None, description="hardware catalog SKU (data/hardware/), for prices")
    price_per_hour: float | None = Field(None, ge=0, description="$ per hour of one replica, overrides the catalog")

    @model_validator(mode="after")
    def _one_kind(self) -> SetupSpec:
        given = [k for k in ("server", "target", "engine") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give one of server (the built-in server's knobs), target (a URL) or engine "
                             "(vllm, sglang, llamacpp, tgi, transformers, command), not "
                             + (" and ".join(given) if given else "none"))
        if self.target is not None and self.target == "builtin":
            raise ValueError("target names a URL; for the built-in server give server: {...}")
        if self.engine is None and (self.args or self.python):
            raise ValueError("args and python are an engine's: give engine too")
        return self

    @property
    def kind(self) -> str:
        return "builtin" if self.server is not None else "engine" if self.engine else "url"


class SweepSpec(_Model):
    name: str = Field(min_length=1, max_length=128)
    slo: str = Field(description="the SLO every point is judged by, e.g. ttft_p99<=500ms,tpot_p99<=50ms")
    duration_s: float = Field(20.0, gt=0, le=24 * 3600, description="seconds of load per point")
    warmup_s: float | None = Field(None, ge=0, description="default: 10% of duration_s")
    drain_s: float = Field(10.0, ge=0, description="wait for in-flight requests after each point; "
                           "requests still running then count as misses")
    repeats: int = Field(3, ge=1, le=100)
    seed: int = Field(0, description="repeat k uses seed + k")
    search: CapacitySearch | GridSearch = Field(discriminator="kind")
    workload: dict[str, Any] = Field(default_factory=dict, description="LoadConfig fields for every point")
    profile: SamplerConfig = Field(default_factory=SamplerConfig)
    setups: dict[str, SetupSpec] = Field(min_length=1)

    @field_serializer("workload")
    def _hide_secrets(self, v: dict[str, Any]) -> dict[str, Any]:
        """The stored spec keeps header names only where they look like credentials (servelab/headers.py)."""
        return {**v, "headers": redacted(v["headers"])} if isinstance(v.get("headers"), dict) else v

    def withheld_headers(self) -> list[str]:
        """Headers of the workload whose value was withheld from the stored spec (REDACTED)."""
        headers = self.workload.get("headers")
        return [k for k, v in headers.items() if v == REDACTED] if isinstance(headers, dict) else []

    @field_validator("slo")
    @classmethod
    def _slo_parses(cls, v: str) -> str:
        from analysis.slo import parse_slo

        if not parse_slo(v):
            raise ValueError("a sweep needs an SLO: capacity is the load at which it holds")
        return v

    @field_validator("setups")
    @classmethod
    def _names(cls, v: dict[str, SetupSpec]) -> dict[str, SetupSpec]:
        for name in v:
            if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
                raise ValueError(f"setup name {name!r}: use letters, digits, '-', '_' or '.'")
        return v

    @model_validator(mode="after")
    def _workload_fits(self) -> SweepSpec:
        owned = sorted(set(self.workload) & _SWEEP_OWNED)
        if owned:
            raise ValueError(f"workload: {owned[0]!r} is set by the sweep itself (search, duration_s, "
                             "warmup_s, drain_s, seed), not by the workload")
        unknown = sorted(set(self.workload) - set(LoadConfig.model_fields))
        if unknown:
            raise ValueError(f"workload: unknown key {unknown[0]!r}")
        arrival = self.workload.get("arrival", "poisson")
        if arrival not in _RATE_ARRIVALS:
            raise ValueError(f"workload: arrival {arrival!r} is not one load: use poisson, constant or gamma")
        self.load_for(1.0, 0)  # every LoadConfig rule, checked now
        return self

    @property
    def slo_terms(self) -> list[SLOTerm]:
        from analysis.slo import parse_slo

        return parse_slo(self.slo)

    @property
    def closed_loop(self) -> bool:
        return isinstance(self.search, GridSearch) and self.search.users is not None

    def load_for(self, load: float, repeat: int) -> LoadConfig:
        """The LoadConfig of one point: the workload at this load, with the repeat's seed."""
        shape = {"mode": "closed", "users": int(load)} if self.closed_loop else {"mode": "open", "rate": load}
        return LoadConfig(**{**self.workload, **shape, "duration_s": self.duration_s, "warmup_s": self.warmup_s,
                             "drain_s": self.drain_s, "seed": self.seed + repeat})

    def run_config(self, setup: str, load: float, repeat: int, label: str) -> RunConfig:
        """The ordinary run config of one point of one setup."""
        s = self.setups[setup]
        return RunConfig(target=s.target or "builtin", label=label, load=self.load_for(load, repeat),
                         server=s.server or ServerConfig(), slo=self.slo_terms, profile=self.profile,
                         engine=s.engine, engine_args=s.args, engine_python=s.python,
                         engine_ready_timeout_s=s.ready_timeout_s)


def read_spec(path: str | Path) -> SweepSpec:
    """The validated spec in a YAML/JSON file; any problem is one UserError line naming the file."""
    from servelab.layers import read_file

    data = read_file(path)  # unreadable or unparsable: already one line naming the file
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith(("function-after", "tagged-union")))
    if err.get("type") == "extra_forbidden":
        return f"unknown key {loc!r}"
    if err.get("type") == "missing":
        return f"missing key {loc!r}"
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg
