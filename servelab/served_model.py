"""The model name a run sends to a URL target: `--served-model`, else the target's own.

OpenAI-compatible servers list what they serve at GET /v1/models ({"data": [{"id": ...}]});
most want one of those ids in every request's `model` field. With none given, a run takes
the first id listed, says so once, and stores it in the run's config (the resolved value).
A target that lists nothing gets requests without `model` (llama.cpp and TGI accept that);
the warm-up request then says whether the target minds. Uses urllib: one short request
before the load, from the CLI's process.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

from servelab.config import RunConfig
from servelab.headers import merged

LIST_TIMEOUT_S = 10.0


def resolve(cfg: RunConfig, base_url: str, environ: Mapping[str, str] = os.environ,
            note: Callable[[str], None] | None = None) -> RunConfig:
    """`cfg` with `load.served_model` filled from the target's /v1/models when it is None
    and the target is a URL; `note` hears what was chosen (or why nothing was)."""
    if cfg.target == "builtin" or cfg.load.served_model:
        return cfg
    ids, why = list_models(base_url, request_headers(cfg, environ))
    if ids:
        more = f" (the first of {len(ids)}; --served-model picks another)" if len(ids) > 1 else ""
        _say(note, f"model: {ids[0]}, from {base_url}/v1/models{more}")
        return cfg.model_copy(update={"load": cfg.load.model_copy(update={"served_model": ids[0]})})
    if why:
        _say(note, f"{base_url}/v1/models: {why}: requests carry no model name (--served-model NAME sets one)")
    return cfg


def request_headers(cfg: RunConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The run's own headers (with their real values) and its bearer token, if any."""
    out = merged(cfg.load.headers, environ)
    key = environ.get(cfg.load.api_key_env) if cfg.load.api_key_env else None
    if key:
        out["Authorization"] = f"Bearer {key}"
    return out


def list_models(base_url: str, headers: Mapping[str, str]) -> tuple[list[str], str | None]:
    """(ids, None) from GET /v1/models, or ([], why not); ([], None) when the target is not
    reachable at all (the warm-up request says that, with its own error)."""
    req = urllib.request.Request(f"{base_url}/v1/models", headers=dict(headers))
    try:
        with urllib.request.urlopen(req, timeout=LIST_TIMEOUT_S) as resp:
            body = resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        return [], f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError):
        return [], None
    try:
        data = json.loads(body).get("data")
        ids = [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
    except (ValueError, AttributeError, TypeError):
        return [], "not a model list"
    return ids, None if ids else "no models listed"


def _say(note: Callable[[str], None] | None, text: str) -> None:
    if note is not None:
        note(text)
