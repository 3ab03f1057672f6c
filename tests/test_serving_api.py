"""The OpenAI-compatible API over the real engine: a tiny model in a real server process."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from servelab.config import ServerConfig
from serving.launch import launch

pytestmark = pytest.mark.slow

CFG = ServerConfig(model="tiny", max_context=4096, max_tokens_limit=3000, max_body_bytes=16384, seed=1)


@pytest.fixture(scope="module")
def url():
    with launch(CFG, timeout_s=60) as server:
        yield server.url


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=30) as c:
        yield c


def stream_chunks(client: httpx.Client, path: str, body: dict) -> tuple[list[dict], list[str]]:
    """The JSON chunks of an SSE stream, and the raw data payloads (to see [DONE])."""
    with client.stream("POST", path, json={**body, "stream": True}) as r:
        assert r.status_code == 200, r.read()
        data = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    return [json.loads(d) for d in data if d != "[DONE]"], data


def test_streaming_completion_counts_and_timings(client):
    chunks, data = stream_chunks(client, "/v1/completions", {"prompt": "Hello", "max_tokens": 12, "ignore_eos": True})
    assert data[-1] == "[DONE]" and data.count("[DONE]") == 1
    texts = [c["choices"][0]["text"] for c in chunks]
    assert len(chunks) == 12 and all(len(t) == 1 and t.isprintable() for t in texts)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    timings = chunks[-1]["servelab"]
    assert timings["prompt_tokens"] == 5 and timings["output_tokens"] == 12
    assert timings["batch_size"] == 1 and timings["cache"] == "miss"
    assert timings["prefill_ms"] > 0 and timings["decode_ms"] > 0 and timings["queue_ms"] >= 0
    assert all(c["object"] == "text_completion" and c["id"] == chunks[0]["id"] for c in chunks)


def test_streaming_chat_with_usage(client):
    body = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "max_tokens": 9, "ignore_eos": True, "stream_options": {"include_usage": True}}
    chunks, data = stream_chunks(client, "/v1/chat/completions", body)
    assert data[-1] == "[DONE]"
    content, final = chunks[:-1], chunks[-1]
    assert len(content) == 9
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in content[1:])
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert final["choices"] == []
    prompt_len = len("system: be brief\nuser: hi\nassistant: ")
    assert final["usage"] == {"prompt_tokens": prompt_len, "completion_tokens": 9, "total_tokens": prompt_len + 9}
    assert final["servelab"]["output_tokens"] == 9 and "servelab" not in content[-1]


def test_non_streaming_both_endpoints(client):
    r = client.post("/v1/completions", json={"prompt": "abc", "max_tokens": 7, "ignore_eos": True})
    body = r.json()
    assert r.status_code == 200 and body["object"] == "text_completion"
    assert len(body["choices"][0]["text"]) == 7 and body["usage"]["completion_tokens"] == 7
    assert r.headers["x-servelab-output-tokens"] == "7" and r.headers["x-servelab-batch-size"] == "1"
    assert float(r.headers["x-servelab-decode-ms"]) == body["servelab"]["decode_ms"]

    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [{"type": "text", "text": "yo"}]}],
                                                  "max_completion_tokens": 5, "ignore_eos": True, "model": "tiny"})
    body = r.json()
    assert r.status_code == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert len(body["choices"][0]["message"]["content"]) == 5
    assert body["usage"]["completion_tokens"] == 5 and body["servelab"]["output_tokens"] == 5


def test_token_id_prompts_count_exactly(client):
    ids = [1, 2, 3, 200, 256, 257, 0]
    r = client.post("/v1/completions", json={"prompt": ids, "max_tokens": 3, "ignore_eos": True})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == len(ids)
    chunks, _ = stream_chunks(client, "/v1/completions", {"prompt": ids, "max_tokens": 4, "ignore_eos": True,
                                                          "stream_options": {"include_usage": True}})
    assert chunks[-1]["usage"]["prompt_tokens"] == len(ids) and chunks[-1]["usage"]["completion_tokens"] == 4


def test_greedy_is_deterministic_and_stop_strings_cut_the_text(client):
    body = {"prompt": "The ", "max_tokens": 24, "temperature": 0, "ignore_eos": True}
    first = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    assert client.post("/v1/completions", json=body).json()["choices"][0]["text"] == first
    stop = first[6:8]
    cut = client.post("/v1/completions", json={**body, "stop": [stop]}).json()["choices"][0]
    assert cut["text"] == first[:first.find(stop)] and cut["finish_reason"] == "stop"
    chunks, _ = stream_chunks(client, "/v1/completions", {**body, "stop": stop})
    assert "".join(c["choices"][0]["text"] for c in chunks) == cut["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_seeded_sampling_repeats(client):
    body = {"prompt": "x", "max_tokens": 16, "temperature": 1.0, "seed": 42, "ignore_eos": True}
    texts = {client.post("/v1/completions", json=body).json()["choices"][0]["text"] for _ in range(2)}
    assert len(texts) == 1


def test_min_tokens_holds_off_eos(client):
    r = client.post("/v1/completions", json={"prompt": "m", "max_tokens": 40, "min_tokens": 40, "temperature": 1.5})
    assert r.json()["usage"]["completion_tokens"] == 40


def test_health_models_and_metrics(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"] == "tiny" and 0.7e6 < health["params"] < 1.3e6
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["tiny"]

    client.post("/v1/completions", json={"prompt": "a", "max_tokens": 2, "ignore_eos": True})
    client.post("/v1/completions", json={"prompt": "a", "max_tokens": 0})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("servelab_queue_seconds_bucket", "servelab_prefill_seconds_count", "servelab_decode_seconds_sum",
                 "servelab_ttft_seconds_count", "servelab_requests_in_flight", "servelab_prompt_tokens_total"):
        assert name in text
    assert 'servelab_requests_total{endpoint="completions",status="200"}' in text
    assert 'servelab_requests_total{endpoint="completions",status="400"}' in text
    assert _metric(text, "servelab_generated_tokens_total") >= 2


def _metric(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


BAD_REQUESTS = [
    ("/v1/completions", b'{"prompt": "x", "max_tokens": ', 400, None),
    ("/v1/completions", b'["not", "an", "object"]', 400, None),
    ("/v1/completions", b'{"prompt": "x", "frobnicate": 1}', 400, "frobnicate"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": "5"}', 400, "max_tokens"),
    ("/v1/completions", b'{"prompt": 5}', 400, "prompt"),
    ("/v1/completions", b'{"max_tokens": 5}', 400, "prompt"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 0}', 400, "max_tokens"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": -3}', 400, "max_tokens"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 100000}', 400, "max_tokens"),
    ("/v1/completions", b'{"prompt": "x", "max_completion_tokens": 0}', 400, "max_completion_tokens"),
    ("/v1/completions", b'{"prompt": "x", "n": 2}', 400, "n"),
    ("/v1/completions", b'{"prompt": "x", "temperature": 9}', 400, "temperature"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": 4, "min_tokens": 5}', 400, "min_tokens"),
    ("/v1/completions", b'{"prompt": [1, 2, 258]}', 400, "prompt"),
    ("/v1/completions", b'{"prompt": [-1]}', 400, "prompt"),
    ("/v1/completions", json.dumps({"prompt": "y" * 4000, "max_tokens": 200}).encode(), 400, "max_tokens"),
    ("/v1/completions", b'{"prompt": "x", "model": "gpt-9"}', 404, "model"),
    ("/v1/chat/completions", b'{"messages": []}', 400, "messages"),
    ("/v1/chat/completions", b'{"messages": [{"role": "wizard", "content": "x"}]}', 400, "messages"),
    ("/v1/chat/completions", b'{"prompt": "x"}', 400, None),
    ("/v1/completions", json.dumps({"prompt": "z" * 20000}).encode(), 413, None),
]


@pytest.mark.parametrize("path, body, status, param", BAD_REQUESTS)
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(client, path, body, status, param):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if param is not None:
        assert error["param"] == param
    ok = client.post("/v1/completions", json={"prompt": "ok", "max_tokens": 1, "ignore_eos": True})
    assert ok.status_code == 200


def test_unknown_routes_and_methods_are_json_errors(client):
    assert client.get("/v1/nothing").json()["error"]["code"] == "not_found"
    r = client.get("/v1/completions")
    assert r.status_code == 405 and "error" in r.json()


def _generated(client: httpx.Client) -> float:
    return _metric(client.get("/metrics").text, "servelab_generated_tokens_total")


def test_a_disconnected_stream_stops_its_generation(client, url):
    # 2000 tokens would keep the single worker busy for seconds; leaving must free it.
    before = _generated(client)
    with httpx.Client(base_url=url, timeout=30) as other:
        with other.stream("POST", "/v1/completions", json={"prompt": "long", "max_tokens": 2000,
                                                            "ignore_eos": True, "stream": True}) as r:
            lines = r.iter_lines()
            while not next(lines).startswith("data: "):
                pass
    time.sleep(0.1)
    r = client.post("/v1/completions", json={"prompt": "next", "max_tokens": 1, "ignore_eos": True})
    assert r.json()["servelab"]["queue_ms"] < 500
    assert _generated(client) - before < 1000
    assert _metric(client.get("/metrics").text, "servelab_requests_in_flight") == 0


def test_a_non_streaming_client_that_gives_up_frees_the_worker(client, url):
    with httpx.Client(base_url=url, timeout=0.3) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.post("/v1/completions", json={"prompt": "long", "max_tokens": 2000, "ignore_eos": True})
    time.sleep(0.1)
    r = client.post("/v1/completions", json={"prompt": "next", "max_tokens": 1, "ignore_eos": True})
    assert r.json()["servelab"]["queue_ms"] < 500


def test_requests_queue_behind_each_other(url):
    """One at a time: concurrent requests wait their turn, and say so in queue_ms."""
    import concurrent.futures as cf

    body = {"prompt": "q", "max_tokens": 30, "ignore_eos": True}
    with httpx.Client(base_url=url, timeout=30) as c, cf.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: c.post("/v1/completions", json=body).json()["servelab"], range(3)))
    # The last one served waited for at least one whole generation before it.
    assert max(t["queue_ms"] for t in results) > min(t["decode_ms"] for t in results) * 0.5
