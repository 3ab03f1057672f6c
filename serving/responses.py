"""OpenAI response objects: streaming chunks, usage chunk, full responses, SSE framing.

Where the server's own timings go (the `servelab` object): in a stream, on the usage chunk
when the client asked for usage, else on the last chunk (the one with `finish_reason`);
in a non-streaming response, at the top level of the body (and as x-servelab-* headers).
"""

from __future__ import annotations

import json
import os
import time


class ObjectFactory:
    """Builds the objects of one response (one id, one `created`, one endpoint kind)."""

    def __init__(self, chat: bool, model: str):
        self.chat = chat
        self.model = model
        self.id = ("chatcmpl-" if chat else "cmpl-") + os.urandom(12).hex()  # 24 random hex digits, as before
        self.created = int(time.time())
        self._role_sent = False

    def _head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def chunk(self, text: str, finish_reason: str | None = None) -> dict:
        if self.chat:
            delta = {"content": text}
            if not self._role_sent:  # the first delta carries the role, as OpenAI's does
                delta = {"role": "assistant", "content": text}
                self._role_sent = True
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**self._head("chat.completion.chunk"), "choices": [choice]}
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return {**self._head("text_completion"), "choices": [choice]}

    def usage_chunk(self, usage: dict) -> dict:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return {**self._head(obj), "choices": [], "usage": usage}

    def full(self, text: str, finish_reason: str, usage: dict) -> dict:
        if self.chat:
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            return {**self._head("chat.completion"), "choices": [choice], "usage": usage}
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return {**self._head("text_completion"), "choices": [choice], "usage": usage}


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def timing_headers(servelab: dict) -> dict[str, str]:
    """The `servelab` object as x-servelab-queue-ms, x-servelab-batch-size, ... headers
    (fields that are None, e.g. `degraded` of a request served in full, are left out)."""
    return {"x-servelab-" + k.replace("_", "-"): str(v) for k, v in servelab.items() if v is not None}
