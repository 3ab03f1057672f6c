"""From a validated OpenAI request to a `GenRequest`: chat template, tokens, limits.

Every check that depends on the server's setup (model name, context, max_tokens limit)
lives here, so the HTTP layer only maps errors to responses.
"""

from __future__ import annotations

from servelab.config import ServerConfig
from serving import tokenizer
from serving.errors import ApiError
from serving.generation import GenRequest
from serving.schemas import ChatRequest, CompletionRequest

# OpenAI's documented default for /v1/completions; used for chat too, so an unbounded
# request on a CPU model cannot run for minutes by accident.
DEFAULT_MAX_TOKENS = 16


def render_chat(req: ChatRequest) -> str:
    """The simplest template: one "role: content" line per message, then the cue."""
    return "".join(f"{m.role}: {m.text()}\n" for m in req.messages) + "assistant: "


def prompt_ids(req: CompletionRequest | ChatRequest) -> list[int]:
    if isinstance(req, ChatRequest):
        return tokenizer.encode(render_chat(req))
    if isinstance(req.prompt, str):
        return tokenizer.encode(req.prompt)
    try:
        tokenizer.check_ids(req.prompt)
    except ValueError as exc:
        raise ApiError(400, str(exc), param="prompt") from None
    return list(req.prompt)


def check_model(name: str | None, cfg: ServerConfig) -> None:
    if name is not None and name != cfg.model:
        raise ApiError(404, f"model {name!r} does not exist; this server serves {cfg.model!r}",
                       param="model", code="model_not_found")


def max_tokens_of(req: CompletionRequest | ChatRequest, cfg: ServerConfig) -> int:
    given = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    n = DEFAULT_MAX_TOKENS if given is None else given
    if not 1 <= n <= cfg.max_tokens_limit:
        raise ApiError(400, f"{param} must be between 1 and {cfg.max_tokens_limit}, got {n}", param=param)
    return n


def build(req: CompletionRequest | ChatRequest, cfg: ServerConfig, t_recv_ns: int) -> tuple[GenRequest, int]:
    """Validate against the setup; return the generation request and the prompt token count."""
    check_model(req.model, cfg)
    if req.n != 1:
        raise ApiError(400, f"only n=1 is supported, got {req.n}", param="n")
    max_tokens = max_tokens_of(req, cfg)
    if req.min_tokens > max_tokens:
        raise ApiError(400, f"min_tokens ({req.min_tokens}) is larger than max_tokens ({max_tokens})",
                       param="min_tokens")
    ids = prompt_ids(req)
    if max(len(ids), 1) + max_tokens > cfg.max_context:
        raise ApiError(400, f"prompt ({len(ids)} tokens) + max_tokens ({max_tokens}) exceeds the context "
                       f"of {cfg.max_context} tokens", param="max_tokens", code="context_length_exceeded")
    gen = GenRequest(
        # An empty prompt still needs one position to predict from.
        prompt_ids=ids or [tokenizer.BOS],
        max_tokens=max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        seed=req.seed,
        ignore_eos=req.ignore_eos,
        min_tokens=req.min_tokens,
        stop=req.stop_list(),
        t_recv_ns=t_recv_ns,
        endpoint="chat" if isinstance(req, ChatRequest) else "completions",
    )
    return gen, len(ids)
