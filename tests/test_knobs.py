"""Every setting declared once: the model's fields, the flags, the environment names and the
config file agree (servelab/knobs.py generates the flags; servelab/layers.py the precedence)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args

import pytest
import typer.main
import yaml

from servelab import knobs
from servelab.cli import app
from servelab.cli_run import run_config, server_config
from servelab.config import RunConfig, ServerConfig

ROOT = Path(__file__).resolve().parents[1]
TRACE = str(ROOT / "data" / "traces" / "AzureLLMInferenceTrace_conv.csv")
DATASET = str(ROOT / "data" / "datasets" / "sample_sharegpt.jsonl")

# The flags the README and scripts use: each must still exist.
RUN_FLAGS = """target users rate arrival burstiness rate-end rate-steps think-time trace trace-format time-scale
trace-start dataset workload length-cv max-context output-cap calibration calib-ttft-ms calib-itl-ms duration
max-requests max-tokens prompt-tokens warmup slo model endpoint api label batching max-batch-size max-wait-ms
exact-cache merge-inflight semantic-cache semantic-threshold semantic-cache-size prefix-cache prefix-block
prefix-cache-tokens prefix-groups prefix-tokens replicas balance threads device precision repeat-rate
paraphrase-rate gpu-sampling torch-profile gpu-devices gpu-hz host-hz workers tier-mix api-key-env tiers
default-tier max-queue overload degrade-queue degrade-max-tokens degrade-model reserved-rows api-keys-file
locust-master remote-workers master-bind store json config""".split()
SERVE_FLAGS = """config host port model device precision threads calibration calib-ttft-ms calib-itl-ms calib-log
batching max-batch-size max-wait-ms exact-cache merge-inflight semantic-cache semantic-threshold
semantic-cache-size prefix-cache prefix-block prefix-cache-tokens replicas balance tiers default-tier max-queue
overload degrade-queue degrade-max-tokens degrade-model reserved-rows api-keys-file""".split()

# Values a field cannot take alone (another field must agree), or that need a real file: the
# flag text, the same value as the file and environment give it, and flags it needs beside.
SPECIAL: dict[tuple[str, str], tuple[str, Any, list[str]]] = {
    ("run", "slo"): ("ttft_p99<=500ms", [{"metric": "ttft", "percentile": 99, "threshold_ms": 500}], []),
    ("run", "workers"): ("2", 2, ["--users", "2"]),
    ("run", "remote_workers"): ("1", 1, ["--users", "2", "--master-bind", "0.0.0.0:5557"]),
    ("run", "master_bind"): ("0.0.0.0:5557", "0.0.0.0:5557", []),
    ("run", "target"): ("http://127.0.0.1:9", "http://127.0.0.1:9", []),
    ("load", "rate"): ("4", 4.0, []),
    ("load", "arrival"): ("gamma", "gamma", ["--rate", "2"]),
    ("load", "rate_end"): ("9", 9.0, ["--rate", "2", "--arrival", "ramp"]),
    ("load", "rate_steps"): ("10:30,40:30", [[10, 30], [40, 30]], ["--arrival", "steps"]),
    ("load", "burstiness"): ("4", 4.0, ["--rate", "2", "--arrival", "gamma"]),
    ("load", "trace_path"): (TRACE, TRACE, ["--rate", "2"]),
    ("load", "dataset_path"): (DATASET, DATASET, []),
    ("load", "workload"): ("uniform", "uniform", []),
    ("load", "prefix_groups"): ("3", 3, ["--prefix-tokens", "8"]),
    ("load", "prefix_tokens"): ("8", 8, ["--prefix-groups", "3"]),
    ("load", "tier_mix"): ("high:0.2,low:0.8", {"high": 0.2, "low": 0.8}, []),
    ("load", "api_key_env"): ("MY_KEY", "MY_KEY", []),
    ("load", "users"): ("4", 4, []),
    ("server", "model"): ("tiny", "tiny", []),
    ("server", "degrade_model"): ("tiny", "tiny", []),
    ("server", "tiers"): ("high:0:protected", {"high": {"priority": 0, "protected": True}}, []),
    ("server", "default_tier"): ("high", "high", ["--tiers", "high:0"]),
    ("server", "overload"): ("degrade", "degrade", ["--max-queue", "4"]),
    ("profile", "device_indices"): ("0,1", [0, 1], []),
}


def _sample(k: knobs.Knob) -> tuple[str | None, Any, list[str]]:
    """(flag text or None for a bool, the value for the file and environment, other flags)."""
    if (k.section, k.field) in SPECIAL:
        return SPECIAL[(k.section, k.field)]
    default = k.default
    if k.annotation is bool:
        return None, not default, []
    info = knobs.MODELS[k.section].model_fields[k.field]
    choices = [c for a in (info.annotation, *get_args(info.annotation)) if getattr(a, "__origin__", None) is Literal
               for c in get_args(a)]
    if choices:
        value = next(c for c in choices if c != default)
        return value, value, []
    if k.annotation in (int, int | None):
        value = (default or 0) + 1
        return str(value), value, []
    if k.annotation in (float, float | None):
        value = default / 2 if default else 0.5
        return str(value), value, []
    return "some-text", "some-text", []


def _command(name: str):
    return typer.main.get_command(app).commands[name]


def _resolve(command: str, args: list[str], config: str | None = None, environ: dict | None = None):
    ctx = _command(command).make_context(command, [*args, *(["--config", config] if config else [])])
    build = run_config if command == "run" else server_config
    return build(ctx, config, ctx.params, environ or {})


def _field(cfg, k: knobs.Knob) -> Any:
    obj = cfg if k.section == "run" or isinstance(cfg, ServerConfig) else getattr(cfg, k.section)
    value = getattr(obj, k.field)
    return json.loads(json.dumps(value, default=lambda m: m.model_dump(mode="json")))


def _flag_args(k: knobs.Knob, text: str | None, value: Any) -> list[str]:
    if text is None:
        return [k.flag if value else f"--no-{k.flag[2:]}"]
    return [k.flag, text]


def test_every_field_of_the_model_is_an_option_with_help():
    run = {(k.section, k.field) for k in knobs.knobs("run")}
    for section in ("run", "load", "server", "profile"):
        for name in knobs.MODELS[section].model_fields:
            key = (section, name)
            if key in knobs.NOT_FLAGS or (section == "run" and name in knobs.SECTIONS):
                continue
            assert key in run or key in knobs.NOT_RUN_FLAGS, key
    assert {k.field for k in knobs.knobs("serve")} == set(ServerConfig.model_fields) - {"api_keys"}
    for k in [*knobs.knobs("run"), *knobs.knobs("serve")]:
        assert k.help and k.help.split(" (")[0] != k.field.replace("_", " "), f"{k.field}: give it a description"


def test_the_flags_scripts_use_still_exist_and_are_unique():
    for command, wanted in (("run", RUN_FLAGS), ("serve", SERVE_FLAGS)):
        opts = [o for p in _command(command).params for o in p.opts]
        assert len(opts) == len(set(opts)), command
        missing = {f"--{f}" for f in wanted} - set(opts)
        assert not missing, (command, missing)


@pytest.mark.parametrize("k", knobs.knobs("run"), ids=lambda k: f"{k.section}.{k.field}")
def test_a_run_setting_reaches_the_model_the_same_from_flag_environment_and_file(k, tmp_path):
    text, value, extra = _sample(k)
    default = json.loads(json.dumps(knobs.MODELS[k.section].model_fields[k.field].get_default(
        call_default_factory=True), default=lambda m: m.model_dump(mode="json")))
    by_flag = _field(_resolve("run", [*extra, *_flag_args(k, text, value)]), k)
    env = {f"SERVELAB_{k.section.upper()}_{k.field.upper()}": json.dumps(value)}
    by_env = _field(_resolve("run", extra, environ=env), k)
    setup = tmp_path / "setup.yaml"
    setup.write_text(yaml.safe_dump({k.field: value} if k.section == "run" else {k.section: {k.field: value}}))
    by_file = _field(_resolve("run", extra, config=str(setup)), k)
    assert by_flag == by_env == by_file != default


@pytest.mark.parametrize("k", knobs.knobs("serve"), ids=lambda k: k.field)
def test_a_serve_setting_reaches_the_model_the_same_from_flag_environment_and_file(k, tmp_path):
    text, value, extra = _sample(k)
    by_flag = _field(_resolve("serve", [*extra, *_flag_args(k, text, value)]), k)
    by_env = _field(_resolve("serve", extra, environ={f"SERVELAB_SERVER_{k.field.upper()}": json.dumps(value)}), k)
    bare = tmp_path / "server.json"  # serve takes a bare ServerConfig file
    bare.write_text(json.dumps({k.field: value}))
    assert by_flag == by_env == _field(_resolve("serve", extra, config=str(bare)), k)


def test_precedence_is_model_then_file_then_environment_then_flag(tmp_path):
    setup = tmp_path / "setup.yaml"
    setup.write_text("server:\n  max_batch_size: 4\n  batching: static\nload:\n  max_tokens: 7\n")
    env = {"SERVELAB_SERVER_MAX_BATCH_SIZE": "6", "SERVELAB_LOAD_MAX_TOKENS": "9"}
    cfg = _resolve("run", ["--max-tokens", "11"], config=str(setup), environ=env)
    assert isinstance(cfg, RunConfig)
    assert cfg.server.batching == "static"  # the file
    assert cfg.server.max_batch_size == 6  # the environment over the file
    assert cfg.load.max_tokens == 11  # the flag over both
    assert cfg.server.max_wait_ms == ServerConfig().max_wait_ms  # the model's default
    assert _resolve("serve", []).port == 8000  # serve's own default port


def test_a_new_field_becomes_an_option_with_nothing_else_written():
    """What docs/architecture.md shows: a field added to the model is a flag at once."""
    from pydantic import Field

    class Grown(ServerConfig):
        kv_block_size: int = Field(16, ge=1, description="tokens per KV-cache block")

    original = knobs.MODELS["server"]
    knobs.MODELS["server"] = Grown
    try:
        k = knobs.knob("server", "kv_block_size", "serve")
        assert (k.flag, k.default, k.help, k.annotation) == ("--kv-block-size", 16, "tokens per KV-cache block", int)
        assert "kv_block_size" in {k.field for k in knobs.knobs("run")}
    finally:
        knobs.MODELS["server"] = original
