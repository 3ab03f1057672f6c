"""Admission control against real server processes on 127.0.0.1: tiers by API key, 429
with Retry-After, the bounded queue (reject / degrade), priority order and reserved rows,
and that keys never leave the server (health, metrics, logs, argv, the store).

The tiny model, mostly one request at a time, so a long streaming "blocker" holds the
engine while others queue behind it. Pure parts: tests/test_serving_admission_unit.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
from contextlib import contextmanager

import httpx
import pytest

from servelab.config import ServerConfig
from serving.launch import launch

HIGH_KEY, LIMITED_KEY, LOW_KEY = "sk-high-7f3a9c", "sk-limited-b41e02", "sk-low-c9d8e7"
KEYS = {HIGH_KEY: "high", LIMITED_KEY: "limited", LOW_KEY: "low"}


def _depth(client: httpx.Client) -> float:
    return float(re.search(r"^servelab_queue_depth (\S+)$", client.get("/metrics").text, re.M).group(1))


def _wait_depth(client: httpx.Client, n: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _depth(client) != n:
        assert time.monotonic() < deadline, f"queue depth never reached {n}"
        time.sleep(0.01)


def _post(client: httpx.Client, key: str | None = None, max_tokens: int = 8, **body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/v1/completions", json={"prompt": "hi", "max_tokens": max_tokens, "ignore_eos": True,
                                                 **body}, headers=headers)


@contextmanager
def blocker(url: str, key: str | None = None):
    """A long streaming request that holds the engine (batching none) until the block ends;
    leaving closes the connection, which cancels it."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"prompt": "block", "max_tokens": 4000, "ignore_eos": True, "stream": True}
    with httpx.Client(base_url=url, timeout=60) as c, c.stream("POST", "/v1/completions", json=body,
                                                                   headers=headers) as r:
        assert r.status_code == 200
        lines = r.iter_lines()  # kept: a dropped iterator would close the stream at once
        next(lines)  # a first token: it is running, nothing waits
        yield


class Background:
    """Requests sent from threads; `results` in completion order: (name, response)."""

    def __init__(self, url: str):
        self.url, self.results, self.threads = url, [], []
        self.lock = threading.Lock()

    def send(self, name: str, key: str | None, max_tokens: int = 8) -> None:
        def go():
            with httpx.Client(base_url=self.url, timeout=120) as c:
                r = _post(c, key, max_tokens)
            with self.lock:
                self.results.append((name, r))
        t = threading.Thread(target=go)
        t.start()
        self.threads.append(t)

    def join(self) -> dict[str, httpx.Response]:
        for t in self.threads:
            t.join(120)
        return dict(self.results)


@pytest.fixture(scope="module")
def reject_server():
    cfg = ServerConfig(model="tiny", max_context=4200, tiers={
        "high": {"priority": 0, "protected": True}, "low": {"priority": 1},
        "limited": {"priority": 1, "rate": 0.5, "burst": 2}},
        api_keys=KEYS, default_tier="low", max_queue=1, exact_cache=True)
    with launch(cfg) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield server, client


@pytest.fixture(scope="module")
def degrade_server():
    cfg = ServerConfig(model="tiny", max_context=4200, tiers={
        "high": {"priority": 0, "protected": True}, "low": {"priority": 1}},
        api_keys={HIGH_KEY: "high", LOW_KEY: "low"}, overload="degrade", degrade_queue=1, max_queue=4,
        degrade_max_tokens=3)
    with launch(cfg) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield server, client


def test_tier_comes_from_the_bearer_key_and_unknown_keys_get_the_default(reject_server):
    _, client = reject_server
    assert _post(client, HIGH_KEY).json()["servelab"]["tier"] == "high"
    assert _post(client).json()["servelab"]["tier"] == "low"
    assert _post(client, "sk-nobody-knows").json()["servelab"]["tier"] == "low"
    r = _post(client, HIGH_KEY)
    assert r.headers["x-servelab-tier"] == "high" and "x-servelab-degraded" not in r.headers
    assert r.json()["servelab"]["degraded"] is None


def test_empty_bucket_is_429_with_retry_after_and_json_then_refills(reject_server):
    _, client = reject_server
    assert [_post(client, LIMITED_KEY).status_code for _ in range(2)] == [200, 200]  # the burst
    r = _post(client, LIMITED_KEY)
    assert r.status_code == 429
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= 2  # 0.5 tokens/s: at most 2 s to the next one
    err = r.json()["error"]
    assert err["code"] == "rate_limit_exceeded" and err["tier"] == "limited"
    assert err["reason"] == "rate_limit_exceeded" and LIMITED_KEY not in r.text
    assert _post(client, HIGH_KEY).status_code == 200  # other tiers are not limited
    time.sleep(retry + 0.2)
    assert _post(client, LIMITED_KEY).status_code == 200


def test_full_queue_rejects_unprotected_admits_protected_and_serves_it_first(reject_server):
    server, client = reject_server
    assert _post(client, LOW_KEY, prompt="cached?", temperature=0).json()["servelab"]["cache"] == "miss"
    bg = Background(server.url)
    with blocker(server.url):
        bg.send("low-queued", None)
        _wait_depth(client, 1)
        r = _post(client, LOW_KEY)  # max_queue 1 is full
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        err = r.json()["error"]
        assert (err["code"], err["tier"], err["reason"]) == ("overloaded", "low", "overloaded")
        cached = _post(client, LOW_KEY, prompt="cached?", temperature=0)  # the cache can answer it:
        assert cached.status_code == 200 and cached.json()["servelab"]["cache"] == "exact"  # never refused
        assert _post(client, LOW_KEY, prompt="not cached", temperature=0).status_code == 503
        bg.send("high", HIGH_KEY)  # protected: admitted beyond the bound, ahead of the low one
        _wait_depth(client, 2)
    done = bg.join()
    assert {name: r.status_code for name, r in done.items()} == {"low-queued": 200, "high": 200}
    assert [name for name, _ in bg.results] == ["high", "low-queued"]
    queue_ms = {name: r.json()["servelab"]["queue_ms"] for name, r in done.items()}
    assert queue_ms["high"] < queue_ms["low-queued"]
    metrics = client.get("/metrics").text
    assert 'servelab_admission_requests_total{outcome="rejected",tier="low"}' in metrics
    assert 'servelab_admission_requests_total{outcome="admitted",tier="high"}' in metrics


def test_keys_never_leave_the_server(reject_server):
    server, client = reject_server
    _post(client, HIGH_KEY), _post(client, LIMITED_KEY), _post(client, "sk-unknown-000")
    seen = {
        "health": client.get("/health").text,
        "metrics": client.get("/metrics").text,
        "stderr": server.stderr_text(),
        "argv": open(f"/proc/{server.proc.pid}/cmdline").read(),
    }
    for where, text in seen.items():
        for key in [*KEYS, "sk-unknown-000"]:
            assert key not in text, f"a key is in the server's {where}"
    assert 'tier="high"' in seen["metrics"]
    assert json.loads(seen["health"])["tiers"] == ["high", "limited", "low"]


def test_missing_or_unknown_key_is_401_without_a_default_tier(degrade_server):
    _, client = degrade_server
    for key in (None, "sk-made-up-31337"):
        r = _post(client, key)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key" and "sk-made-up" not in r.text
    assert _post(client, LOW_KEY).status_code == 200


def test_degrade_caps_max_tokens_of_unprotected_requests_and_says_so(degrade_server):
    server, client = degrade_server
    bg = Background(server.url)
    with blocker(server.url, LOW_KEY):
        bg.send("low-first", LOW_KEY, max_tokens=20)  # depth 0: served in full
        _wait_depth(client, 1)
        bg.send("low-degraded", LOW_KEY, max_tokens=20)  # depth 1 = degrade_queue
        _wait_depth(client, 2)
        bg.send("high", HIGH_KEY, max_tokens=20)  # protected: never degraded
        _wait_depth(client, 3)
    done = bg.join()
    body = {name: r.json() for name, r in done.items()}
    assert body["low-first"]["servelab"]["degraded"] is None
    assert body["low-first"]["usage"]["completion_tokens"] == 20
    assert body["low-degraded"]["servelab"]["degraded"] == "max_tokens"
    assert body["low-degraded"]["usage"]["completion_tokens"] == 3
    assert done["low-degraded"].headers["x-servelab-degraded"] == "max_tokens"
    assert body["high"]["servelab"]["degraded"] is None and body["high"]["usage"]["completion_tokens"] == 20
    assert 'servelab_admission_requests_total{outcome="degraded",tier="low"} 1.0' in client.get("/metrics").text


# --- a whole run -----------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["--locust-master", "--workers", "2"]], ids=["one", "master"])
def test_tiered_run_records_every_outcome_and_stores_no_key(cli, tmp_path, workers):
    """`servelab run` with two tiers: the load generator sends each tier's key (from the
    environment), the low tier is rate-limited, every request is stored with its outcome
    and tier, and no key is in the output, the store or any file the run left behind."""
    store = tmp_path / "s.duckdb"
    keys = {"sk-run-high-5ec2e7": "high", "sk-run-low-90ab1f": "low"}
    res = cli("run", "--calibration", "--rate", "20", "--duration", "4", "--max-tokens", "4",
              "--tiers", "high:0:protected,low:1:rate=2:burst=2", "--tier-mix", "high:0.3,low:0.7",
              "--gpu-sampling", "off", "--store", str(store), "--json", *workers,
              env={"SERVELAB_API_KEYS": json.dumps(keys)})
    assert res.returncode == 0, res.stderr
    import duckdb

    with duckdb.connect(str(store), read_only=True) as con:
        rows = con.sql("SELECT status, http_status, server->>'tier', error FROM requests").fetchall()
        config = con.sql("SELECT config FROM runs").fetchall()[0][0]
    tiers = [t if t else json.loads(err)["error"]["tier"] for _, _, t, err in rows]
    outcomes = {(s, code) for s, code, _, _ in rows}
    assert outcomes <= {("ok", 200), ("http_error", 429)} and ("http_error", 429) in outcomes
    assert {t for (s, _, _, _), t in zip(rows, tiers) if s != "ok"} == {"low"}  # only the limited tier
    assert {"high", "low"} <= set(tiers)
    assert json.loads(config)["load"]["tier_mix"] == {"high": 0.3, "low": 0.7}
    blobs = [res.stdout, res.stderr, config, *(p.read_bytes().decode("utf-8", "replace")
                                               for p in tmp_path.rglob("*") if p.is_file() and p != store)]
    blobs.append(store.read_bytes().decode("latin-1"))
    for key in keys:
        assert all(key not in blob for blob in blobs)


@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_batched_modes_take_the_wait_queue_in_priority_order(batching):
    """One row (max_batch_size 1) held by a blocker: two low requests queue, then a high
    one; when the row frees, the high one joins first, then the lows in arrival order."""
    cfg = ServerConfig(model="tiny", max_context=4200, batching=batching, max_batch_size=1, max_wait_ms=0,
                       tiers={"high": {"priority": 0}, "low": {"priority": 5}},
                       api_keys={HIGH_KEY: "high"}, default_tier="low")
    with launch(cfg) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        bg = Background(server.url)
        with blocker(server.url):
            bg.send("low-1", None)
            _wait_depth(client, 1)
            bg.send("low-2", None)
            _wait_depth(client, 2)
            bg.send("high", HIGH_KEY)
            _wait_depth(client, 3)
        done = bg.join()
    assert all(r.status_code == 200 for r in done.values())
    assert [name for name, _ in bg.results] == ["high", "low-1", "low-2"]


def test_degrade_to_a_smaller_model_serves_in_full_while_the_big_one_is_busy():
    """With degrade_model, a degraded request runs on the second (smaller) engine: it is
    answered in full, by that model, while the main engine is still held by the blocker."""
    cfg = ServerConfig(model="small", degrade_model="tiny", max_context=4200,
                       tiers={"high": {"priority": 0, "protected": True}, "low": {"priority": 1}},
                       default_tier="low", overload="degrade", degrade_queue=1, max_queue=4)
    with launch(cfg, timeout_s=120) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        bg = Background(server.url)
        with blocker(server.url):
            bg.send("low-queued", None)
            _wait_depth(client, 1)
            r = _post(client, max_tokens=12)  # answered before the blocker ends
            assert r.status_code == 200
            body = r.json()
            assert body["model"] == "tiny" and body["servelab"]["degraded"] == "model"
            assert body["usage"]["completion_tokens"] == 12  # in full: the model is what degrades
        done = bg.join()
    queued = done["low-queued"].json()
    assert queued["model"] == "small" and queued["servelab"]["degraded"] is None


def test_a_tier_mix_without_keys_is_one_line_before_anything_starts(cli, tmp_path):
    res = cli("run", "--calibration", "--rate", "5", "--duration", "2", "--tiers", "high:0",
              "--tier-mix", "high:1", "--store", str(tmp_path / "s.duckdb"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["servelab: error: tier_mix: no key for tier(s) high in SERVELAB_API_KEYS"]
    assert not (tmp_path / "s.duckdb").exists()


def test_reserved_rows_are_left_to_protected_tiers():
    """continuous, 2 rows, 1 reserved: a low blocker holds one row; a second low request
    stays queued (only the reserved row is free), while a high one takes it at once."""
    cfg = ServerConfig(model="tiny", max_context=4200, batching="continuous", max_batch_size=2, reserved_rows=1,
                       tiers={"high": {"priority": 0, "protected": True}, "low": {"priority": 1}},
                       api_keys={HIGH_KEY: "high"}, default_tier="low")
    with launch(cfg) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        bg = Background(server.url)
        with blocker(server.url):
            bg.send("low", None)
            _wait_depth(client, 1)
            r = _post(client, HIGH_KEY)  # answered while the blocker runs and the low one waits
            assert r.status_code == 200 and r.json()["servelab"]["batch_size"] == 2
            assert _depth(client) == 1
        assert bg.join()["low"].status_code == 200
    with pytest.raises(ValueError, match="reserved_rows"):
        ServerConfig(batching="continuous", max_batch_size=2, reserved_rows=2)


def test_jobs_are_admitted_at_submission_with_their_tier(reject_server):
    _, client = reject_server
    sub = client.post("/v1/jobs", json={"endpoint": "completions", "body": {"prompt": "hi", "max_tokens": 4}},
                      headers={"Authorization": f"Bearer {HIGH_KEY}"})
    assert sub.status_code == 202, sub.text
    done = client.get(sub.headers["Location"], params={"wait": 30}).json()
    assert done["status"] == "succeeded" and done["result"]["servelab"]["tier"] == "high"
    time.sleep(4.5)  # the limited tier's bucket refills (0.5/s, burst 2)
    codes = []
    for _ in range(3):  # one at a time, so the queue bound never enters: only the bucket decides
        r = client.post("/v1/jobs", json={"endpoint": "completions", "body": {"prompt": "x", "max_tokens": 2}},
                        headers={"Authorization": f"Bearer {LIMITED_KEY}"})
        codes.append(r)
        if r.status_code == 202:
            assert client.get(r.headers["Location"], params={"wait": 30}).json()["status"] == "succeeded"
    assert [r.status_code for r in codes] == [202, 202, 429]
    refused = codes[2]
    assert refused.headers["Retry-After"].isdigit()
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and refused.json()["error"]["tier"] == "limited"
