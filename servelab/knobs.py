"""Every knob of `serve` and `run` as a CLI option, generated from the typed model's fields.

A field of ServerConfig, LoadConfig, SamplerConfig or RunConfig (servelab/config.py) is
one line there and becomes, with nothing else to write: a flag (`--max-batch-size`, its
help the field's description, its default the model's), an environment variable
(`SERVELAB_SERVER_MAX_BATCH_SIZE`, servelab/layers.py) and a config-file key. Scalars
(bool, int, float, str, a Literal, or those `| None`) are parsed by the flag itself; any
other type takes JSON (`--x '{"a": 1}'`). What is not derived is listed here, once: the
older flag names (`--duration` for `duration_s`), the flags with their own text syntax
(`--tiers`, `--tier-mix`, `--rate-steps`, `--slo`, `--gpu-devices`), and the fields that
are never flags (secrets, fields derived from others). tests/test_knobs.py holds the model,
the flags, the environment and the file to agreement.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel

from servelab.config import LoadConfig, RunConfig, SamplerConfig, ServerConfig
from servelab.errors import UserError

MODELS: dict[str, type[BaseModel]] = {"server": ServerConfig, "load": LoadConfig, "profile": SamplerConfig,
                                      "run": RunConfig}
SECTIONS = ("server", "load", "profile")  # RunConfig's fields that are models of their own

# Fields that are never flags, with why.
NOT_FLAGS = {
    ("server", "api_keys"): "a secret: SERVELAB_API_KEYS or --api-keys-file, never a command line",
    ("load", "mode"): "derived: --rate (or a trace or steps) means open loop, --users closed",
}
# `run` starts the built-in server on a free local port itself.
NOT_RUN_FLAGS = {("server", "host"), ("server", "port"), ("server", "calib_log")}

# Flags whose name is not the field's: older names kept, and the two sections' same-named fields.
FLAG_NAMES = {
    ("load", "duration_s"): "duration", ("load", "warmup_s"): "warmup", ("load", "think_time_s"): "think_time",
    ("load", "trace_start_s"): "trace_start", ("load", "trace_path"): "trace", ("load", "dataset_path"): "dataset",
    ("load", "headers"): "header", ("load", "seed"): "load_seed", ("server", "seed"): "server_seed",
    ("server", "max_context"): "server_max_context",
    ("profile", "enabled"): "profilers", ("profile", "gpu"): "gpu_sampling",
    ("profile", "torch_profile_s"): "torch_profile", ("profile", "torch_profile_at_s"): "torch_profile_at",
    ("profile", "device_indices"): "gpu_devices", ("run", "engine_ready_timeout_s"): "engine_ready_timeout",
}
# In `serve` only server fields exist, so they keep their own names there.
SERVE_NAMES = {("server", "seed"): "seed", ("server", "max_context"): "max_context"}


def _parsers() -> dict[tuple[str, str], tuple[Callable[[str | None], Any], str]]:
    """Flags with their own text syntax: field -> (parser of the flag's text, help)."""
    from servelab.admission_flags import parse_mix, parse_tiers
    from servelab.cli_common import parse_indices, parse_slo_flag
    from servelab.load_flags import parse_rate_steps

    return {
        ("server", "tiers"): (parse_tiers, 'tiers by API key: NAME:PRIORITY[:rate=R][:burst=B][:protected],..., '
                              'e.g. "high:0:protected,low:1:rate=5"'),
        ("load", "tier_mix"): (parse_mix, 'share of requests per tier, e.g. "high:0.2,low:0.8"; '
                               "keys from SERVELAB_API_KEYS"),
        ("load", "rate_steps"): (parse_rate_steps, 'steps arrivals: "rate:seconds,...", e.g. 10:30,40:30'),
        ("run", "slo"): (lambda text: parse_slo_flag(text) or [], 'e.g. "ttft_p99<=500ms,tpot_p99<=50ms"'),
        ("profile", "device_indices"): (parse_indices, "GPU indices to sample, e.g. 0,1 (default: all)"),
    }


# Help for the fields that have no description in the model (or one written for the file,
# not for a command line). A new field needs none here: its description is its help, and
# tests/test_knobs.py fails for a field that has neither.
HELP = {
    ("run", "label"): "a name for the run",
    ("load", "users"): "closed loop: concurrent users",
    ("load", "arrival"): "open loop: poisson, constant, gamma, ramp, steps, trace "
                         "(default: trace with --trace, else poisson)",
    ("load", "workload"): "lengths: fixed, uniform, normal, lognormal, trace, dataset "
                          "(default: from --dataset/--trace)",
    ("load", "duration_s"): "seconds of load",
    ("load", "warmup_s"): "seconds excluded at the start (default 10%)",
    ("load", "max_requests"): "stop after this many requests",
    ("load", "max_tokens"): "output tokens per request",
    ("load", "prompt_tokens"): "prompt tokens per request",
    ("load", "trace_format"): "trace file format",
    ("load", "prompt_format"): "prompts as text or as token ids (auto: token ids for the built-in server)",
    ("load", "endpoint"): "OpenAI endpoint",
    ("load", "ignore_eos"): "send ignore_eos/min_tokens (vLLM/SGLang) so outputs are max_tokens long "
                            "(default: when the target accepts them, probed at warm-up)",
    ("load", "seed"): "seed of the arrivals, lengths and prompts",
    ("server", "host"): "address to bind",
    ("server", "port"): "port; 0 picks a free one",
    ("server", "model"): "model size: tiny, small, base",
    ("server", "device"): "where the model runs",
    ("server", "precision"): "weights and activations (fp16 on cuda, int8 on cpu)",
    ("server", "threads"): "torch intra-op threads (per replica)",
    ("server", "seed"): "seed of the random weights and of sampling",
    ("server", "batching"): "none, static (wait max-wait-ms to fill a batch) or continuous",
    ("server", "exact_cache"): "exact result cache (deterministic requests)",
    ("server", "merge_inflight"): "merge identical in-flight requests",
    ("server", "semantic_cache"): "semantic cache: answer prompts that mean the same (deterministic requests)",
    ("server", "prefix_cache"): "reuse the K/V of shared prompt prefixes",
    ("server", "calibration"): "known-timing mode, no model",
    ("server", "calib_ttft_ms"): "calibration: time to the first chunk",
    ("server", "calib_itl_ms"): "calibration: gap between chunks",
    ("server", "calib_log"): "calibration: log when each chunk was written (JSON lines; "
                             "`servelab calibrate --server-log`)",
    ("server", "api_keys_file"): "JSON or TOML file of API key -> tier (or set SERVELAB_API_KEYS to that JSON)",
    ("profile", "gpu_hz"): "GPU samples per second (NVML refreshes power about every 100 ms)",
    ("profile", "host_hz"): "host (CPU, RSS) samples per second",
    ("profile", "torch_profile_s"): "seconds of PyTorch profiler window on the built-in server (or a launched "
                                    "vLLM/SGLang engine: its /start_profile), after warm-up",
    ("profile", "torch_profile_at_s"): "start of the PyTorch profiler window, seconds into the step "
                                       "(default: when warm-up ends)",
}
# `run` leaves these unset unless given: what they default to depends on other flags (load_flags.py).
RUN_UNSET = {("load", "users"), ("load", "arrival"), ("load", "workload")}
ADMISSION = {"tiers", "default_tier", "max_queue", "overload", "degrade_queue", "degrade_max_tokens",
             "degrade_model", "reserved_rows", "api_keys_file"}
RUN_PANELS = {"server": "Built-in server", "load": "Load", "profile": "Profilers", "run": None}
# How to talk to any OpenAI-compatible target (README "Measuring your own server").
TARGET_PANEL = {("run", "target"), ("load", "served_model"), ("load", "extra_body"), ("load", "api_key_env"),
                ("load", "ignore_eos")}


@dataclass(frozen=True)
class Knob:
    """One field of a config section as one CLI option."""

    section: str  # server, load, profile, or run (RunConfig's own fields)
    field: str
    param: str  # the Python parameter; the flag is `--` + it with dashes
    annotation: Any  # what the option parses: bool, int, float or str (| None)
    default: Any
    help: str
    panel: str | None
    parse: Callable[[Any], Any] | None = None  # the option's text -> the field's value

    @property
    def flag(self) -> str:
        return "--" + self.param.replace("_", "-")

    def option(self) -> inspect.Parameter:
        two_way = self.annotation is bool or self.annotation == bool | None  # None: neither given
        decls = (f"{self.flag}/--no-{self.flag[2:]}",) if two_way else (self.flag,)
        info = typer.Option(self.default, *decls, help=self.help, rich_help_panel=self.panel, show_default=True)
        return inspect.Parameter(self.param, inspect.Parameter.KEYWORD_ONLY, default=info,
                                 annotation=self.annotation)


def _scalar(annotation: Any) -> tuple[Any, str | None]:
    """(the option's type, the choices text) for a field type; (None, None) if not a scalar."""
    args = get_args(annotation)
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        base, choices = _scalar(inner[0]) if len(inner) == 1 else (None, None)
        return (base | None if base else None), choices
    if get_origin(annotation) is Literal and all(isinstance(a, str) for a in args):
        return str, ", ".join(args)
    return (annotation, None) if annotation in (bool, int, float, str) else (None, None)


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise UserError(f"expected JSON, e.g. '{{\"a\": 1}}', not {text!r}") from None


def knob(section: str, name: str, command: str) -> Knob:
    """The option of one field, for `command` (serve or run)."""
    key = (section, name)
    info = MODELS[section].model_fields[name]
    param = (SERVE_NAMES if command == "serve" else {}).get(key) or FLAG_NAMES.get(key) or name
    panel = ("Admission" if name in ADMISSION else None) if command == "serve" else RUN_PANELS[section]
    if command == "run" and key in TARGET_PANEL:
        panel = "Target"
    if command == "run" and section == "run" and name.startswith("engine"):
        panel = "Engine"
    default = None if info.default_factory is not None else info.default
    if key == ("load", "headers"):  # repeatable: --header 'K: V' --header 'K2: V2'
        from servelab.target_flags import HEADER_HELP, parse_headers

        return Knob(section, name, param, list[str] | None, None, HEADER_HELP, "Target", parse_headers)
    special = _parsers().get(key)
    if special:
        return Knob(section, name, param, str | None, None, special[1], panel, special[0])
    base, choices = _scalar(info.annotation)
    text = HELP.get(key) or info.description or name.replace("_", " ")
    if choices and choices not in text:
        text += f" ({choices})"
    if base is None:  # a mapping or list without a text syntax of its own: JSON
        return Knob(section, name, param, str | None, None, text + " (JSON)", panel, _json)
    if command == "run" and key in RUN_UNSET:
        base, default = base | None, None
    return Knob(section, name, param, base, default, text, panel)


def knobs(command: str) -> list[Knob]:
    """Every option of `serve` (ServerConfig) or `run` (all four models), in field order."""
    sections = ("server",) if command == "serve" else ("run", "load", "server", "profile")
    out = []
    for section in sections:
        for name in MODELS[section].model_fields:
            key = (section, name)
            if key in NOT_FLAGS or (section == "run" and name in SECTIONS):
                continue
            if command == "run" and key in NOT_RUN_FLAGS:
                continue
            out.append(knob(section, name, command))
    return out


def with_knobs(command: str, defaults: dict[str, Any] | None = None) -> Callable[[Callable], Callable]:
    """Adds the command's generated options to a Typer command function's signature; the
    function takes them as `**values` (param -> value). `defaults`: param -> a default
    other than the model's (serve's port 8000)."""
    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        made = []
        for k in knobs(command):
            if defaults and k.param in defaults:
                k = dataclasses.replace(k, default=defaults[k.param])
            made.append(k.option())
        fn.__signature__ = sig.replace(parameters=[*own, *made])  # type: ignore[attr-defined]
        return fn

    return decorate


def flag_sections(command: str, values: dict[str, Any],
                  given: Callable[[str], bool]) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str]]]:
    """The flags' values as config fields by section (parsed), and the fields whose flag
    was given (they win over a file and the environment, servelab/layers.py)."""
    out: dict[str, dict[str, Any]] = {s: {} for s in ("run", *SECTIONS)}
    chosen = set()
    for k in knobs(command):
        if k.param not in values:
            continue
        value, was_given = values[k.param], given(k.param)
        if k.parse is _json and not was_given:
            continue  # the model's own default stands
        out[k.section][k.field] = k.parse(value) if k.parse else value
        if was_given:
            chosen.add((k.section, k.field))
    return out, chosen
