"""Whole-response requests (non-streaming and jobs) from the load generator's client,
against a real server process. gevent runs in the test process without monkey-patching
(the client only uses gevent's own sockets)."""

from __future__ import annotations

import json

import httpx
import pytest

from analysis.metrics import e2e_ns, tpot_ns, ttft_ns
from loadtest.client import Target
from loadtest.prompts import JOBS_PATH, PATHS, request_body
from loadtest.record import new_record
from loadtest.whole import whole_request
from servelab.config import LoadConfig, ServerConfig
from serving.launch import launch


@pytest.fixture(scope="module")
def url():
    with launch(ServerConfig(model="tiny", seed=1, job_concurrency=1), timeout_s=90) as server:
        yield server.url


def send(url: str, api: str, max_tokens: int = 6, timeout_s: float = 30.0, **body_fields) -> dict:
    load = LoadConfig(api=api, max_tokens=max_tokens)
    body = request_body(load, [65, 66, 67, 68])
    if api == "job":
        body["body"].update(body_fields)
    else:
        body.update(body_fields)
    data = json.dumps(body).encode()
    target = Target(url)
    rec = new_record("w0-000001", "w0", None, None, max_tokens, 4)
    path = JOBS_PATH if api == "job" else PATHS["completions"]
    pool = target.pool(1, timeout_s)
    whole_request(pool, target, target.head(path, rec["req_id"], len(data)), data, rec, timeout_s,
                  job=api == "job")
    pool.close()
    return rec


@pytest.mark.parametrize("api", ["job", "nonstream"])
def test_whole_response_is_one_chunk_at_the_result(url, api):
    rec = send(url, api)
    assert rec["status"] == "ok" and rec["http_status"] == 200, rec
    assert rec["chunk_ns"] == [rec["t_first_ns"]] and rec["t_first_ns"] == rec["t_last_ns"] > rec["t_send_ns"]
    assert rec["output_tokens"] == 6 and rec["prompt_tokens"] == 4 and rec["output_tokens_client"] is None
    assert rec["server"]["output_tokens"] == 6 and rec["server"]["decode_ms"] > 0
    assert ("job_queue_ms" in rec["server"]) == (api == "job")
    assert ttft_ns(rec) == e2e_ns(rec) > 0 and tpot_ns(rec) is None


def test_a_job_the_server_refuses_is_an_http_error(url):
    rec = send(url, "job", max_tokens=10**6)
    assert rec["status"] == "http_error" and rec["http_status"] == 400
    assert "max_tokens" in rec["error"]


def test_a_job_longer_than_the_timeout_times_out_and_is_deleted(url):
    rec = send(url, "job", max_tokens=1500, timeout_s=1.0, ignore_eos=True)
    assert rec["status"] == "timeout" and rec["t_last_ns"] > rec["t_send_ns"]
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert 'servelab_jobs_finished_total{status="cancelled"} 1.0' in metrics
    assert "servelab_jobs_pending 0.0" in metrics
