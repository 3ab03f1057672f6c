"""The per-request record as the load generator fills it in: a `requests-<producer>.jsonl`
line (keys: servelab/spoolfile.py).

A record starts as `cancelled` with no timings and is filled in as the request goes, so a
request interrupted at any point is still written with what was seen. Pure: no I/O.
"""

from __future__ import annotations

from loadtest.sse import SSEParser
from servelab.spoolfile import MAX_ERROR_CHARS, REQUEST_KEYS, STATUSES

# The keys, statuses and error cap are the spool contract's (servelab/spoolfile.py).
__all__ = ["MAX_ERROR_CHARS", "REQUEST_KEYS", "STATUSES", "apply_parser", "finish_stream", "new_record",
           "req_id", "set_failure"]


def req_id(producer: str, seq: int) -> str:
    """`w0-000012`: unique within a run because producers are."""
    return f"{producer}-{seq:06d}"


def new_record(rid: str, producer: str, user_id: int | None, t_sched_ns: int | None,
               max_tokens: int, prompt_tokens_client: int | None) -> dict:
    """A record for a request not yet sent (status `cancelled` until something happens)."""
    return {
        "req_id": rid, "producer": producer, "user_id": user_id, "t_sched_ns": t_sched_ns,
        "t_send_ns": None, "wall_send_ns": None, "t_first_ns": None, "t_last_ns": None,
        "chunk_ns": [], "status": "cancelled", "http_status": None, "error": None,
        "prompt_tokens": None, "output_tokens": None,
        "prompt_tokens_client": prompt_tokens_client, "output_tokens_client": 0,
        "max_tokens": max_tokens, "server": None,
    }  # fmt: skip


def set_failure(rec: dict, status: str, error: str) -> None:
    """Marks the request failed, keeping the first failure (the cause) if there are several."""
    if rec["status"] in ("ok", "cancelled"):
        rec["status"] = status
        rec["error"] = error[:MAX_ERROR_CHARS]


def finish_stream(rec: dict, parser: SSEParser) -> None:
    """Copies what the stream said into the record and decides ok vs stream_error.

    Call it after the stream was read to its end (not after a timeout or a dropped
    connection: those already set their status, and only the data is copied then).
    """
    apply_parser(rec, parser)
    if parser.error is not None:
        set_failure(rec, "stream_error", parser.error)
    elif not parser.done:
        set_failure(rec, "stream_error", "stream ended without [DONE]")
    elif rec["status"] == "cancelled":
        rec["status"] = "ok"


def apply_parser(rec: dict, parser: SSEParser) -> None:
    chunks = rec["chunk_ns"]
    rec["t_first_ns"] = chunks[0] if chunks else None
    rec["output_tokens_client"] = len(chunks)
    rec["prompt_tokens"] = parser.prompt_tokens
    rec["output_tokens"] = parser.output_tokens
    rec["server"] = parser.server
