"""Request validation: pydantic models of the OpenAI request bodies this server accepts.

Models are strict (no "5" -> 5 coercion) and forbid unknown fields, so a client bug shows
up as a 400 naming the field rather than as a silently different experiment. Fields that
do not apply to this server (penalties, logprobs, echo, user) are accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.errors import ApiError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(_Strict):
    include_usage: bool = False
    continuous_usage_stats: bool = False  # vLLM; accepted, usage is sent once at the end


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(p.text for p in self.content)


class _Common(_Strict):
    """Fields shared by completions and chat completions."""

    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    ignore_eos: bool = False  # vLLM extension
    min_tokens: int = Field(0, ge=0)  # vLLM extension

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def stop_list(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return tuple(s for s in stops if s)


RequestModel = TypeVar("RequestModel", bound=_Common)


class CompletionRequest(_Common):
    prompt: str | list[int]
    logprobs: int | None = None
    echo: bool = False
    suffix: str | None = None


class ChatRequest(_Common):
    messages: list[Message] = Field(min_length=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None


def parse(body: bytes, model: type[RequestModel]) -> RequestModel:
    """Validate a JSON body; any problem becomes a 400 naming the first bad field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if errors[0]["type"] == "json_invalid":
            raise ApiError(400, f"request body is not valid JSON: {errors[0]['msg']}", code="invalid_json") from None
        param = str(errors[0]["loc"][0]) if errors[0]["loc"] else None
        # A union field (prompt: str | list[int]) fails once per branch; show every branch.
        same = [e for e in errors if (str(e["loc"][0]) if e["loc"] else None) == param]
        message = "; ".join(_describe(e) for e in same)
        raise ApiError(400, message, param=param) from None


def _describe(err: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]
