"""What real OpenAI-compatible servers send, measured through the real load generator.

Each test starts a small HTTP server (http.server, 127.0.0.1 port 0) that answers with
exactly one quirk's byte stream (several tokens per chunk, no [DONE], CRLF, `data:` without
a space, keep-alive comments, role-only and empty deltas, no usage, an error inside a 200
stream, a refusal of ignore_eos/min_tokens), runs `servelab run --target URL` in a
subprocess against it, and checks the stored records, the stored config and the summary.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from store import queries

Stream = Callable[[dict], list[bytes]]
LOAD = ("--users", "2", "--duration", "2", "--warmup", "0", "--max-tokens", "12", "--prompt-tokens", "8",
        "--gpu-sampling", "off", "--store", "s.duckdb")


def sse(obj: dict, end: bytes = b"\n", space: bool = True) -> bytes:
    return b"data:" + (b" " if space else b"") + json.dumps(obj).encode() + end + end


def text_chunk(text: str, finish: str | None = None) -> dict:
    return {"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": finish}]}


def usage(body: dict, n: int) -> dict:
    return {"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}}


class QuirkServer:
    """An OpenAI-compatible stub: GET /v1/models, POST /v1/(chat/)completions answered with
    `stream(body)`'s byte pieces, chunked, `gap_s` apart. It keeps every body and header set
    it got; `refuse_forcing` answers bodies with ignore_eos/min_tokens with HTTP 422."""

    def __init__(self, stream: Stream, models: tuple[str, ...] = ("tiny-llama",), gap_s: float = 0.005,
                 refuse_forcing: bool = False, refusal: tuple[int, bytes] | None = None, refuse_all: bool = False):
        self.stream, self.models, self.gap_s, self.refuse_forcing = stream, models, gap_s, refuse_forcing
        detail = [{"loc": ["body", "ignore_eos"], "msg": "Extra inputs are not permitted"}]
        self.refusal = refusal or (422, json.dumps({"detail": detail}).encode())
        self.refuse_all = refuse_all
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as real servers: each chunk leaves when written

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path == "/metrics":  # no Prometheus endpoint, like many servers: said once
                    self._whole(404, b"{}")
                    return
                server.headers.append(dict(self.headers))
                body = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})
                self._whole(200, body.encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                server.headers.append(dict(self.headers))
                if server.refuse_all or (server.refuse_forcing and ("ignore_eos" in body or "min_tokens" in body)):
                    self._whole(*server.refusal)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in server.stream(body):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                    time.sleep(server.gap_s)
                self.wfile.write(b"0\r\n\r\n")

            def _whole(self, code: int, data: bytes):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def quirk():
    servers: list[QuirkServer] = []

    def start(stream: Stream, **kw) -> QuirkServer:
        servers.append(QuirkServer(stream, **kw))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def run_json(cli, url: str, *extra: str, env: dict[str, str] | None = None) -> tuple[dict, str]:
    res = cli("run", "--target", url, *LOAD, *extra, "--json", env=env, timeout=180)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1]), res.stderr


def stored(tmp_path: Path, run_id: str) -> tuple[dict, list[dict]]:
    path = str(tmp_path / "s.duckdb")
    return queries.get_run(path, run_id), queries.get_requests(path, run_id).to_dict("records")


# --- several tokens per chunk, no [DONE] ---------------------------------------------------------

def packed_no_done(body: dict) -> list[bytes]:
    """vLLM under load packs tokens; some servers end after the usage chunk, with no [DONE]."""
    n = body["max_tokens"]
    return [sse(text_chunk(" a b c")) for _ in range(n // 3)] + [
        sse(text_chunk("", "length")), sse(usage(body, n))]


@pytest.mark.slow
def test_several_tokens_per_chunk_without_done_is_a_good_run(cli, tmp_path, quirk):
    server = quirk(packed_no_done, gap_s=0.01)
    s, err = run_json(cli, server.url)
    run, recs = stored(tmp_path, s["run_id"])
    ok = [r for r in recs if r["status"] == "ok"]
    assert len(ok) == len([r for r in recs if r["status"] != "cancelled"]) > 0
    assert {(r["output_tokens"], r["output_tokens_client"]) for r in ok} == {(12, 4)}  # usage, chunks
    assert s["status"] == "completed" and s["self_check"]["passed"], s["self_check"]["reasons"]
    assert s["self_check"]["usage_vs_client_token_mismatch_frac"] == 0.0 and s["self_check"]["error_frac"] == 0.0
    # ITL per chunk is one gap per 3-token chunk; per token it is that gap / (11 / 3).
    assert s["itl_token_ms"]["p50"] == pytest.approx(s["itl_ms"]["p50"] * 3 / 11, rel=1e-6)
    # The model name came from /v1/models, was said once, sent, and stored resolved.
    assert err.count("model: tiny-llama") == 1
    assert run["config"]["load"]["served_model"] == "tiny-llama" == s["served_model"]
    assert {b.get("model") for b in server.bodies} == {"tiny-llama"}


# --- CRLF, `data:` without a space, keep-alive comments, role-only and empty deltas ----------------

def chat_quirks(body: dict) -> list[bytes]:
    n, crlf = body["max_tokens"], b"\r\n"
    delta = lambda d, fin=None: {"object": "chat.completion.chunk",  # noqa: E731
                                 "choices": [{"index": 0, "delta": d, "finish_reason": fin}]}
    out = [b": keep-alive\r\n\r\n", sse(delta({"role": "assistant"}), crlf, False),
           sse(delta({"content": ""}), crlf, False)]
    for _ in range(n):
        out += [sse(delta({"content": "x"}), crlf, False), b": keep-alive\r\n\r\n"]
    return out + [sse(delta({}, "stop"), crlf, False), sse(usage(body, n), crlf, False), b"data:[DONE]\r\n\r\n"]


@pytest.mark.slow
def test_crlf_no_space_keepalive_and_empty_deltas_count_only_content(cli, tmp_path, quirk):
    server = quirk(chat_quirks)
    s, _ = run_json(cli, server.url, "--endpoint", "chat", "--served-model", "chosen")
    _, recs = stored(tmp_path, s["run_id"])
    ok = [r for r in recs if r["status"] == "ok"]
    assert ok and all(r["status"] in ("ok", "cancelled") for r in recs)
    assert {(r["output_tokens"], r["output_tokens_client"]) for r in ok} == {(12, 12)}
    assert all(r["t_first_ns"] == r["chunk_ns"][0] for r in ok)  # the role-only delta is not the first token
    assert s["self_check"]["passed"] and s["usage_missing"] == 0
    assert {b["model"] for b in server.bodies} == {"chosen"}
    assert not [h for h in server.headers if "Authorization" in h]  # /v1/models was not asked either
    assert len(server.headers) == len(server.bodies)


# --- usage absent --------------------------------------------------------------------------------

def no_usage(body: dict) -> list[bytes]:
    return [sse(text_chunk(" y")) for _ in range(body["max_tokens"] - 1)] + [
        sse(text_chunk(" y", "length")), b"data: [DONE]\n\n"]


@pytest.mark.slow
def test_stream_without_usage_is_ok_and_its_length_is_a_flagged_estimate(cli, tmp_path, quirk):
    server = quirk(no_usage, models=())
    s, err = run_json(cli, server.url)
    _, recs = stored(tmp_path, s["run_id"])
    ok = [r for r in recs if r["status"] == "ok"]
    assert ok and {(r["output_tokens"], r["output_tokens_client"]) for r in ok} == {(None, 12)}
    assert s["usage_missing"] == s["measured_requests"] - s["errors"] > 0  # every measured ok request
    assert "no models listed" in err and all("model" not in b for b in server.bodies)


# --- an error object inside a 200 stream: the run's requests mostly failed -----------------------

def error_in_stream(body: dict) -> list[bytes]:
    return [sse(text_chunk(" z")), sse({"error": {"message": "engine overloaded", "type": "server_error"}})]


@pytest.mark.slow
def test_error_inside_a_200_stream_fails_the_self_check_with_the_commonest_error(cli, tmp_path, quirk):
    server = quirk(error_in_stream)
    res = cli("run", "--target", server.url, *LOAD, timeout=180)
    assert res.returncode == 0, res.stderr
    assert "self-check failed" in res.stdout and "commonest: stream_error: engine overloaded" in res.stdout
    run_id = queries.list_runs(str(tmp_path / "s.duckdb"))[0]["run_id"]
    run, recs = stored(tmp_path, run_id)
    failed = [r for r in recs if r["status"] != "cancelled"]
    assert failed and {(r["status"], r["error"], r["http_status"]) for r in failed} == {
        ("stream_error", "engine overloaded", 200)}
    assert run["self_check"]["error_frac"] == 1.0 and not run["self_check"]["passed"]


# --- a target that refuses ignore_eos/min_tokens -------------------------------------------------

def one_token_chunks(body: dict) -> list[bytes]:
    n = body["max_tokens"]
    return [sse(text_chunk(" w")) for _ in range(n)] + [sse(text_chunk("", "stop")), sse(usage(body, n)),
                                                         b"data: [DONE]\n\n"]


@pytest.mark.slow
def test_refused_length_forcing_goes_on_without_it_says_so_once_and_stores_it(cli, tmp_path, quirk):
    server = quirk(one_token_chunks, refuse_forcing=True)
    s, err = run_json(cli, server.url, "--workers", "2")
    run, recs = stored(tmp_path, s["run_id"])
    assert err.count("refused ignore_eos/min_tokens") == 1  # two workers found it; said once
    assert run["config"]["load"]["ignore_eos"] is False and s["length_forcing"] is False
    measured = [b for b in server.bodies if "ignore_eos" not in b]
    assert len(server.bodies) - len(measured) == 2  # only the two probes carried them
    assert recs and all(r["status"] in ("ok", "cancelled") for r in recs)
    assert s["self_check"]["passed"], s["self_check"]["reasons"]


@pytest.mark.slow
def test_a_plain_400_to_the_probe_alone_is_a_refusal_too(cli, tmp_path, quirk):
    server = quirk(one_token_chunks, refuse_forcing=True, refusal=(400, b'{"error": {"message": "bad request"}}'))
    s, err = run_json(cli, server.url)
    assert "refused ignore_eos/min_tokens (HTTP 400)" in err and s["length_forcing"] is False
    assert s["self_check"]["passed"] and s["errors"] == 0


def test_a_target_that_rejects_every_request_is_one_line_naming_its_answer(cli, tmp_path, quirk):
    server = quirk(one_token_chunks, refuse_all=True, refusal=(400, b'{"error": {"message": "unknown model"}}'))
    res = cli("run", "--target", server.url, *LOAD, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "rejected the warm-up request: HTTP 400" in res.stderr and "unknown model" in res.stderr
    assert len(server.bodies) == 2 and "ignore_eos" not in server.bodies[1]  # asked again without them


# --- headers and extra body: sent, and no secret stored ------------------------------------------

@pytest.mark.slow
def test_headers_and_extra_body_reach_the_target_and_secrets_stay_out_of_the_store(cli, tmp_path, quirk):
    server = quirk(one_token_chunks)
    secret = "sk-live-0123456789abcdef"
    s, err = run_json(cli, server.url, "--header", "X-Tenant: team-a", "--header", f"X-Gateway-Key: {secret}",
                      "--header", "X-Route: Bearer hidden-value", "--extra-body", '{"top_k": 1}',
                      "--api-key-env", "MY_KEY", env={"MY_KEY": "sk-bearer-secret"})
    assert all(h["X-Tenant"] == "team-a" and h["X-Gateway-Key"] == secret for h in server.headers)
    assert all(h["Authorization"] == "Bearer sk-bearer-secret" for h in server.headers)  # /v1/models too
    assert server.bodies and all(b["top_k"] == 1 for b in server.bodies)
    run, _ = stored(tmp_path, s["run_id"])
    assert run["config"]["load"]["headers"] == {"X-Tenant": "team-a", "X-Gateway-Key": "<redacted>",
                                                "X-Route": "<redacted>"}
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert secret.encode() not in data and b"sk-bearer-secret" not in data and b"hidden-value" not in data, f
    assert secret not in err


# --- built-in server flags with a URL target -----------------------------------------------------

@pytest.mark.parametrize(("flag", "value"), [("--batching", "continuous"), ("--precision", "int8"),
                                             ("--model", "tiny"), ("--replicas", "2")])
def test_builtin_server_flags_with_a_url_target_are_one_line(cli, tmp_path, flag, value):
    res = cli("run", "--target", "http://127.0.0.1:9", flag, value, "--store", "s.duckdb")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    line = res.stderr.strip()
    assert line.startswith(f"servelab: error: {flag} configures the built-in server") and "\n" not in line
    assert not (tmp_path / "s.duckdb").exists()
