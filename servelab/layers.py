"""Where a setup's values come from: a config file, the environment, the flags given.

Every knob is a field of the one typed model (`servelab/config.py`), and each can be set
three ways (the flags are generated from the fields: servelab/knobs.py). Precedence, lowest
first, applied in one place (`merge`):

1. the model's defaults (also the flags' defaults);
2. `--config FILE`, YAML or JSON: for `run`, a `RunConfig` mapping (top-level fields such
   as `target`, `workers`, `slo`, plus `server:`, `load:` and `profile:` sections); for
   `serve`, a `ServerConfig` mapping, or the `server:` section of a run file;
3. environment variables `SERVELAB_SERVER_<FIELD>`, `SERVELAB_LOAD_<FIELD>`,
   `SERVELAB_PROFILE_<FIELD>` and `SERVELAB_RUN_<FIELD>` (top-level run fields), e.g.
   `SERVELAB_SERVER_BATCHING=continuous`, `SERVELAB_LOAD_RATE=4`; a value that parses as
   JSON is taken as JSON (numbers, booleans, lists, objects), anything else as a string;
4. the flags given on the command line.

An unknown field, in a file or a variable, is an error, as in the model itself. Secrets
never go through here: API keys come from `SERVELAB_API_KEYS` or `--api-keys-file`
(serving/admission.py). Pure except for reading the one file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from servelab.config import ENV_PREFIX
from servelab.errors import UserError

SECTIONS = ("server", "load", "profile", "run")  # "run": RunConfig's own top-level fields


def read_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON config file (one `servelab: error:` line if unusable)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file {p}: {exc}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - json's ValueError, or any of yaml's YAMLErrors
        raise UserError(f"config file {p} is not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: "
                        f"{(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {p} must hold a mapping of settings, not {type(data).__name__}")
    return data


def run_layer(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A run config mapping split into sections: server, load, profile, and run (the rest)."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in data.items():
        if key in ("server", "load", "profile"):
            if not isinstance(value, dict):
                raise UserError(f"config: {key} must be a mapping of settings")
            out[key].update(value)
        else:
            out["run"][key] = value
    return out


def env_layer(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The `SERVELAB_<SECTION>_<FIELD>` variables, by section; field names lower-cased."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for name, raw in environ.items():
        for section in SECTIONS:
            prefix = f"{ENV_PREFIX}{section.upper()}_"
            if name.startswith(prefix) and len(name) > len(prefix):
                out[section][name[len(prefix):].lower()] = _value(raw)
    return out


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def layered(config_file: str | None, environ: Mapping[str, str], serve: bool = False) -> dict[str, dict[str, Any]]:
    """File, then environment, by section (`serve`: a file may be a bare ServerConfig)."""
    base: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    if config_file:
        data = read_file(config_file)
        if serve and "server" not in data:
            data = {"server": data}
        base = run_layer(data)
    for section, values in env_layer(environ).items():
        base[section].update(values)
    return base


def merge(flags: Mapping[str, Mapping[str, Any]], given: set[tuple[str, str]],
          layer: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The one precedence, by section: the flags' values (their defaults are the model's),
    then the file and environment `layer` for every field whose flag was not `given`
    ((section, field) pairs), then the flags given."""
    out = {s: dict(flags.get(s) or {}) for s in SECTIONS}
    for section, values in layer.items():
        for field, value in values.items():
            if (section, field) not in given:
                out[section][field] = value
    return out


def given_by(ctx) -> Callable[[str], bool]:
    """Whether a parameter of the click/typer context came from the command line (or its
    own environment variable), rather than from its default."""
    def given(name: str) -> bool:
        # By name: typer vendors its own click, whose ParameterSource is another enum class.
        return getattr(ctx.get_parameter_source(name), "name", None) in ("COMMANDLINE", "ENVIRONMENT")

    return given
