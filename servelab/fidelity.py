"""The output fidelity probe: a fixed prompt set, sent greedily to OpenAI-compatible servers.

Each prompt of data/prompts/fidelity.jsonl goes to `POST {url}/v1/completions` with
`temperature: 0`, `seed: 0` and `logprobs: 1`, one at a time (the answer must not depend on
what else is in a batch more than the server makes it). The answer's tokens are the
`logprobs.tokens` strings when the server gives them (vLLM, TGI, ...), otherwise the
answer's characters: the built-in server's byte-level tokenizer emits one printable
character per token, so for it characters are exactly its tokens; for another server
without logprobs, characters are a finer unit than its tokens (stated in the report as
`token_unit`). The comparison itself is analysis/fidelity.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from analysis.fidelity import compare_outputs
from servelab.errors import UserError
from servelab.targets import normalize_url

PROMPTS = Path(__file__).resolve().parents[1] / "data" / "prompts" / "fidelity.jsonl"


def load_prompts(path: str | Path = PROMPTS) -> list[dict[str, str]]:
    """[{"id", "prompt"}, ...] from a JSONL file; a missing or malformed file is a user error."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        raise UserError(f"prompt file {path} cannot be read") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append({"id": str(row.get("id", n)), "prompt": str(row["prompt"])})
        except (json.JSONDecodeError, KeyError, AttributeError):
            raise UserError(f"{path}:{n}: expected a JSON object with a \"prompt\" field") from None
    if not out:
        raise UserError(f"prompt file {path} holds no prompts")
    return out


def _model(client: httpx.Client, url: str) -> str:
    """The first model the server lists (the built-in server lists its one model)."""
    try:
        data = client.get(f"{url}/v1/models").json().get("data") or []
    except (httpx.HTTPError, ValueError):
        data = []
    return data[0]["id"] if data and "id" in data[0] else "default"


def _answer(body: Mapping[str, Any]) -> tuple[list[str], str]:
    choice = (body.get("choices") or [{}])[0]
    tokens = (choice.get("logprobs") or {}).get("tokens")
    if tokens:
        return list(tokens), "server tokens"
    return list(choice.get("text") or ""), "characters"


def probe(url: str, prompts: Sequence[Mapping[str, str]], max_tokens: int = 32, model: str | None = None,
          timeout_s: float = 120.0, on_prompt: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Greedy answers of the server at `url` to every prompt: {"url", "model", "token_unit", "outputs"}."""
    url = normalize_url(url)
    outputs, units = [], set()
    with httpx.Client(timeout=timeout_s) as client:
        name = model or _model(client, url)
        for i, p in enumerate(prompts):
            body = {"model": name, "prompt": p["prompt"], "max_tokens": max_tokens, "temperature": 0,
                    "seed": 0, "logprobs": 1, "stream": False}
            try:
                resp = client.post(f"{url}/v1/completions", json=body)
            except httpx.HTTPError as exc:
                raise UserError(f"fidelity probe: {url} did not answer: {exc}") from None
            if resp.status_code != 200:
                raise UserError(f"fidelity probe: {url} answered HTTP {resp.status_code} to prompt {p['id']}: "
                                f"{resp.text[:200]}")
            tokens, unit = _answer(resp.json())
            units.add(unit)
            outputs.append({"id": p["id"], "tokens": tokens, "text": "".join(tokens) if unit == "characters"
                            else resp.json()["choices"][0].get("text")})
            if on_prompt:
                on_prompt(i + 1)
    return {"url": url, "model": name, "token_unit": "characters" if "characters" in units else "server tokens",
            "outputs": outputs}


def report(baseline: Mapping[str, Any], candidate: Mapping[str, Any]) -> dict[str, Any]:
    """analysis.fidelity.compare_outputs over two probes of the same prompts, with what was compared."""
    ids = [o["id"] for o in baseline["outputs"]]
    if ids != [o["id"] for o in candidate["outputs"]]:
        raise UserError("fidelity: the two probes answered different prompt sets")
    out = compare_outputs([o["tokens"] for o in baseline["outputs"]], [o["tokens"] for o in candidate["outputs"]])
    changed = [i for i, a, b in zip(ids, baseline["outputs"], candidate["outputs"]) if a["tokens"] != b["tokens"]]
    unit = "characters" if "characters" in (baseline["token_unit"], candidate["token_unit"]) else "server tokens"
    return {**out, "token_unit": unit, "changed_prompts": changed}
