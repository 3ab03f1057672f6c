"""Async jobs on a real server process: submit, poll, long-poll, result, cancel, bounds."""

from __future__ import annotations

import time

import httpx
import pytest

from servelab.config import ServerConfig
from serving.launch import launch

# One job runs at a time and two may be pending, so the queue and the bound are easy to reach.
CFG = ServerConfig(model="tiny", seed=1, max_jobs=2, job_concurrency=1, job_ttl_s=4.0, job_wait_max_s=30)
LONG = {"prompt": "long", "max_tokens": 2000, "ignore_eos": True}  # ~10 s or more on the tiny CPU model


@pytest.fixture(scope="module")
def client():
    with launch(CFG, timeout_s=90) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def submit(client: httpx.Client, body: dict, endpoint: str = "completions") -> dict:
    r = client.post("/v1/jobs", json={"endpoint": endpoint, "body": body})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    return job


def wait_done(client: httpx.Client, job_id: str) -> dict:
    job = client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert job["status"] not in ("queued", "running"), job
    return job


def metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_seeded_job_result_equals_the_non_streaming_answer(client):
    body = {"prompt": "Hello there", "max_tokens": 10, "seed": 7, "ignore_eos": True}
    job = submit(client, body)
    assert job["object"] == "job" and job["status"] == "queued" and job["created"] > 0
    done = wait_done(client, job["id"])
    sync = client.post("/v1/completions", json=body).json()
    result = done["result"]
    assert done["status"] == "succeeded" and result["object"] == "text_completion"
    assert result["choices"] == sync["choices"] and result["usage"] == sync["usage"]
    assert result["servelab"]["output_tokens"] == 10 and result["servelab"]["cache"] == "miss"
    assert result["servelab"]["decode_ms"] > 0 and result["servelab"]["job_queue_ms"] >= 0
    assert done["submitted_at"] <= done["started_at"] <= done["finished_at"]


def test_chat_job(client):
    done = wait_done(client, submit(client, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                                             "ignore_eos": True}, endpoint="chat")["id"])
    assert done["result"]["object"] == "chat.completion"
    assert len(done["result"]["choices"][0]["message"]["content"]) == 4


def test_queue_long_poll_cancel_and_bound(client):
    submitted = metric(client, "servelab_jobs_submitted_total")
    running = submit(client, LONG)
    queued = submit(client, {**LONG, "prompt": "second"})
    assert client.get(f"/v1/jobs/{running['id']}").json()["status"] == "running"
    # Long-poll on an unfinished job: returns after about `wait`, still pending.
    t0 = time.monotonic()
    job = client.get(f"/v1/jobs/{queued['id']}", params={"wait": 0.5}).json()
    assert job["status"] == "queued" and time.monotonic() - t0 >= 0.4
    assert metric(client, "servelab_jobs_pending") == 2
    # Over the bound: 429 with an OpenAI-style body.
    r = client.post("/v1/jobs", json={"body": {"prompt": "third", "max_tokens": 1}})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_jobs" and r.headers["retry-after"]
    # Cancel both: the queued one never runs, the running one stops.
    assert client.post(f"/v1/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"
    gone = client.delete(f"/v1/jobs/{running['id']}").json()
    assert gone["status"] == "cancelled" and gone["deleted"] is True
    assert client.get(f"/v1/jobs/{running['id']}").status_code == 404
    r = client.post(f"/v1/jobs/{queued['id']}/cancel")
    assert r.status_code == 409 and r.json()["error"]["code"] == "job_finished"
    assert metric(client, "servelab_jobs_pending") == 0
    assert metric(client, "servelab_jobs_submitted_total") == submitted + 2
    # The slot is free again: a new job runs at once.
    assert wait_done(client, submit(client, {"prompt": "after", "max_tokens": 2})["id"])["status"] == "succeeded"


def test_finished_job_expires_after_its_ttl(client):
    job_id = submit(client, {"prompt": "ttl", "max_tokens": 2})["id"]
    assert wait_done(client, job_id)["status"] == "succeeded"
    time.sleep(CFG.job_ttl_s + 0.5)
    r = client.get(f"/v1/jobs/{job_id}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"


@pytest.mark.parametrize(("payload", "param"), [
    ({"endpoint": "completions", "body": {"prompt": "x", "stream": True}}, "body.stream"),
    ({"endpoint": "completions", "body": {"prompt": "x", "max_tokens": "5"}}, "body.max_tokens"),
    ({"endpoint": "chat", "body": {"messages": []}}, "body.messages"),
    ({"endpoint": "embeddings", "body": {"prompt": "x"}}, "endpoint"),
    ({"prompt": "x"}, "body"),
])
def test_bad_job_bodies_are_400_json(client, payload, param):
    r = client.post("/v1/jobs", json=payload)
    assert r.status_code == 400 and r.json()["error"]["param"] == param
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_bad_json_and_bad_wait_and_unknown_id(client):
    r = client.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert client.get("/v1/jobs/job-unknown").status_code == 404
    assert client.delete("/v1/jobs/job-unknown").json()["error"]["code"] == "job_not_found"
    job_id = submit(client, {"prompt": "w", "max_tokens": 1})["id"]
    r = client.get(f"/v1/jobs/{job_id}", params={"wait": "soon"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "wait"
    wait_done(client, job_id)
