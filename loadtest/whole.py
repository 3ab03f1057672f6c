"""Whole-response requests: non-streaming completions and async jobs (`LoadConfig.api`).

Neither has chunks to time, so the record holds one content chunk, the moment the whole
result arrived: t_first_ns = t_last_ns = chunk_ns[0]. TTFT is then the time to the whole
result, and ITL/TPOT do not apply (None). The client cannot count tokens it never saw
one by one: `output_tokens_client` is None and the server's usage counts.

A job (`api="job"`) is POST /v1/jobs (202 and the job's id; t_send_ns is this submit),
then GET /v1/jobs/{id}?wait=S long-polls on the same keep-alive connection until the job
is finished; t_last_ns is when the finished job's body arrived. A job that failed or was
cancelled on the server is a `stream_error` naming its status; a job that outlives the
request timeout is deleted (DELETE /v1/jobs/{id}, best effort), as a server stops a
stream whose client left.

Imports gevent: only for the load-generator process.
"""

from __future__ import annotations

import json
import time

import gevent
from gevent import GreenletExit
from geventhttpclient.connectionpool import ConnectionPool

from loadtest.client import Target, _Expired, _record_failure, _send, stream_request
from loadtest.record import MAX_ERROR_CHARS, set_failure

POLL_WAIT_S = 30.0  # one long-poll; the server bounds it too (job_wait_max_s)
JOBS_PATH = "/v1/jobs"
CANCEL_TIMEOUT_S = 2.0


def send_request(api: str, pool: ConnectionPool, target: Target, head: bytes, body: bytes,
                 rec: dict, timeout_s: float) -> None:
    """One request of the load's `api` (stream, nonstream or job); fills `rec`, never
    raises except GreenletExit (as `stream_request`)."""
    if api == "stream":
        stream_request(pool, head, body, rec, timeout_s)
    else:
        whole_request(pool, target, head, body, rec, timeout_s, job=api == "job")


def whole_request(pool: ConnectionPool, target: Target, head: bytes, body: bytes, rec: dict,
                  timeout_s: float, job: bool) -> None:
    timer = gevent.Timeout(timeout_s, _Expired)
    timer.start()
    job_id = None
    try:
        code, raw, t = _exchange(pool, head + body, rec)
        rec["http_status"] = code
        if not 200 <= code < 300:
            set_failure(rec, "http_error", _text(raw, code))
            return
        obj = json.loads(raw)
        if job:
            job_id = str(obj["id"])
            obj, t = _poll(pool, target, job_id, rec)
        if obj is not None:
            _fill(rec, obj, t)
    except GreenletExit:
        rec["status"], rec["error"] = "cancelled", "still in flight when the load stopped"
        raise
    except (ValueError, KeyError, TypeError) as exc:  # not the JSON an OpenAI server sends
        set_failure(rec, "stream_error", f"bad response body: {type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a failure is a record, never a crash
        _record_failure(rec, exc, rec["http_status"] is not None, timeout_s)
        if job_id is not None and isinstance(exc, _Expired):
            _cancel(pool, target, job_id, rec["req_id"])  # as a stream's server stops when its client leaves
    finally:
        timer.close()
        if rec["t_last_ns"] is None:
            rec["t_last_ns"] = time.perf_counter_ns()


def _exchange(pool: ConnectionPool, data: bytes, rec: dict) -> tuple[int, bytes, int]:
    """Sends `data` (stamping `rec`'s send times), reads the whole body; (status, body, arrival)."""
    resp = _send(pool, data, rec)
    try:
        raw = resp.read()
        return resp.status_code, raw, time.perf_counter_ns()
    finally:
        resp.release()


def _poll(pool: ConnectionPool, target: Target, job_id: str, rec: dict) -> tuple[dict | None, int]:
    """Long-polls the job until it is finished: (its result, arrival), or (None, t) after
    recording why it has none."""
    head = target.head(f"{JOBS_PATH}/{job_id}?wait={POLL_WAIT_S:g}", rec["req_id"], 0, method="GET")
    while True:
        code, raw, t = _exchange(pool, head, {})  # a scratch dict: t_send_ns stays the submit's
        rec["t_last_ns"] = t
        if code != 200:
            rec["http_status"] = code
            set_failure(rec, "http_error", _text(raw, code))
            return None, t
        job = json.loads(raw)
        status = job.get("status")
        if status == "succeeded":
            rec["http_status"] = code
            return job["result"], t
        if status not in ("queued", "running"):
            error = (job.get("error") or {}).get("message") or "no result"
            set_failure(rec, "stream_error", f"job {status}: {error}")
            return None, t


def _cancel(pool: ConnectionPool, target: Target, job_id: str, rid: str) -> None:
    """Best effort: DELETE a job this client gave up on, so it stops using the server."""
    with gevent.Timeout(CANCEL_TIMEOUT_S, False):
        try:
            _exchange(pool, target.head(f"{JOBS_PATH}/{job_id}", rid, 0, method="DELETE"), {})
        except Exception:  # noqa: BLE001 - the record already says timeout
            pass


def _fill(rec: dict, obj: dict, t: int) -> None:
    choice = (obj.get("choices") or [{}])[0]
    text = choice.get("text") or (choice.get("message") or {}).get("content") or ""
    usage = obj.get("usage") or {}
    rec["t_last_ns"] = t
    rec["chunk_ns"] = [t] if text else []
    rec["t_first_ns"] = t if text else None
    rec["prompt_tokens"] = usage.get("prompt_tokens")
    rec["output_tokens"] = usage.get("completion_tokens")
    rec["output_tokens_client"] = None
    server = obj.get("servelab")
    rec["server"] = server if isinstance(server, dict) else None
    if rec["status"] == "cancelled":
        rec["status"] = "ok"


def _text(raw: bytes, code: int) -> str:
    return raw.decode("utf-8", "replace")[:MAX_ERROR_CHARS] or f"HTTP {code} with an empty body"
