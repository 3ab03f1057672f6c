"""A line-at-a-time parser for OpenAI-compatible server-sent event streams.

The caller timestamps each raw line as it arrives, then feeds it here; `feed` says what
the line was, so only content lines become chunk times. State kept across lines: the
server's `usage`, its `servelab` timings object, the first error, whether a choice said
its `finish_reason`, and whether `[DONE]` came. It never raises: bad input becomes an
`ERROR` classification with a message.

What real servers send, all accepted: several tokens in one chunk (one CONTENT line: the
token count comes from `usage`), empty and role-only deltas (EMPTY), `: keep-alive`
comments, `data:` with or without the space, CRLF line ends, `usage` in the last content
chunk or in a chunk of its own, and an error object inside a 200 stream (ERROR, its message
kept).

Each `data:` line is parsed on its own (OpenAI, vLLM, SGLang, TGI and llama.cpp all send
one JSON object per line); an event split across several `data:` lines is reported as
malformed.
"""

from __future__ import annotations

import json

# Classifications, returned by `SSEParser.feed`.
CONTENT = "content"  # a chunk carrying output text (or reasoning text)
EMPTY = "empty"  # a data chunk with no output: role-only or empty delta, finish_reason only
USAGE = "usage"  # a data chunk with `usage` (and no output text)
SERVER = "server"  # a data chunk with only the top-level `servelab` timings object
DONE = "done"  # data: [DONE]
COMMENT = "comment"  # ": keep-alive"
BLANK = "blank"  # the empty line that ends an event
FIELD = "field"  # event:, id:, retry: and other non-data lines
ERROR = "error"  # an error object, an `event: error`, or malformed data

_MAX_ERROR = 500


def has_content(obj: dict) -> bool:
    """True when any choice carries output: completions `text`, chat `delta.content`,
    or reasoning text (`delta.reasoning_content`, `delta.reasoning`)."""
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if _nonempty(choice.get("text")):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and (
            _nonempty(delta.get("content"))
            or _nonempty(delta.get("reasoning_content"))
            or _nonempty(delta.get("reasoning"))
        ):
            return True
    return False


def has_finish(obj: dict) -> bool:
    """True when any choice carries a non-null `finish_reason`."""
    choices = obj.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") not in (None, "") for c in choices)


def _nonempty(value: object) -> bool:
    return isinstance(value, str) and value != ""


def error_message(obj: dict) -> str | None:
    """The message of an in-stream error object, in OpenAI's or vLLM's shape; else None."""
    err = obj.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err)[:_MAX_ERROR]
    if err:
        return str(err)[:_MAX_ERROR]
    if obj.get("object") == "error":
        return str(obj.get("message") or obj)[:_MAX_ERROR]
    return None


class SSEParser:
    """Classifies the lines of one response stream and keeps what the record needs."""

    __slots__ = ("prompt_tokens", "output_tokens", "server", "error", "done", "finished", "_event")

    def __init__(self) -> None:
        self.prompt_tokens: int | None = None
        self.output_tokens: int | None = None
        self.server: dict | None = None
        self.error: str | None = None
        self.done = False
        self.finished = False  # some choice said its finish_reason (stop, length, ...)
        self._event = ""  # the pending `event:` name, cleared at the blank line

    def feed(self, line: bytes) -> str:
        line = line.rstrip(b"\r\n")
        if not line:
            self._event = ""
            return BLANK
        if line[:1] == b":":
            return COMMENT
        if line[:5] != b"data:":
            if line[:6] == b"event:":
                self._event = line[6:].strip().decode("utf-8", "replace")
            return FIELD
        payload = line[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return DONE
        if self._event == "error":
            return self._fail(payload.decode("utf-8", "replace") or "error event")
        return self._data(payload)

    def _data(self, payload: bytes) -> str:
        try:
            obj = json.loads(payload)
        except ValueError:  # also covers invalid UTF-8
            return self._fail("malformed SSE data: " + payload[:200].decode("utf-8", "replace"))
        if not isinstance(obj, dict):
            return self._fail("malformed SSE data: not a JSON object: " + payload[:200].decode("utf-8", "replace"))
        message = error_message(obj)
        if message is not None:
            return self._fail(message)
        kind = CONTENT if has_content(obj) else EMPTY
        if not self.finished and has_finish(obj):
            self.finished = True
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = _int_or_none(usage.get("prompt_tokens"), self.prompt_tokens)
            self.output_tokens = _int_or_none(usage.get("completion_tokens"), self.output_tokens)
            kind = USAGE if kind == EMPTY else kind
        server = obj.get("servelab")
        if isinstance(server, dict):
            self.server = server
            kind = SERVER if kind == EMPTY else kind
        return kind

    def _fail(self, message: str) -> str:
        if self.error is None:  # the first error is the cause; later ones are fallout
            self.error = message[:_MAX_ERROR]
        return ERROR


def _int_or_none(value: object, old: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else old
