"""Admission control: tiers by API key, token buckets, the bounded queue, reject/degrade,
priority order; and that keys never leave the server (health, metrics, logs, argv, store).

Pure parts (bucket, queue, key loading, flags, config dumps) are tested directly; the rest
against real server processes on 127.0.0.1 (tiny model, one request at a time, so a long
streaming "blocker" holds the engine while others queue behind it).
"""

from __future__ import annotations

import json
import re
import threading
import time
from contextlib import contextmanager

import httpx
import pytest

from servelab.admission_flags import parse_mix, parse_tiers
from loadtest.tiers import TierPicker, keys_for
from servelab.config import LoadConfig, RunConfig, ServerConfig
from servelab.errors import UserError
from serving.admission import AdmissionController, Admitted, Refused, TokenBucket, bearer, load_api_keys
from serving.generation import GenRequest
from serving.jobqueue import JobQueue
from serving.launch import launch

HIGH_KEY, LIMITED_KEY, LOW_KEY = "sk-high-7f3a9c", "sk-limited-b41e02", "sk-low-c9d8e7"
KEYS = {HIGH_KEY: "high", LIMITED_KEY: "limited", LOW_KEY: "low"}


# --- pure parts ------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_allows_a_burst_then_says_when_the_next_token_comes():
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3.0, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    clock.t += 0.25
    assert bucket.take() == pytest.approx(0.25)  # half a token refilled
    clock.t += 0.25
    assert bucket.take() == 0.0
    clock.t += 100  # refills up to the burst, never beyond
    assert [bucket.take() for _ in range(4)][-1] == pytest.approx(0.5)


def _gen(priority: int, name: str):
    class Gen:
        request = GenRequest(prompt_ids=[1], max_tokens=1, priority=priority)
    Gen.name = name
    return Gen


def test_job_queue_serves_lower_priority_first_fifo_within_one_and_shutdown_last():
    q = JobQueue()
    for prio, name in [(1, "low-a"), (1, "low-b"), (0, "high-a"), (None, "stop"), (0, "high-b"), (1, "low-c")]:
        q.put(None if prio is None else _gen(prio, name))
    assert q.qsize() == 6 and q.peek().name == "high-a"
    taken = [q.get_nowait() for _ in range(6)]
    assert [g.name if g else None for g in taken] == ["high-a", "high-b", "low-a", "low-b", "low-c", None]


def test_api_keys_come_from_a_toml_file_the_environment_and_the_config(tmp_path):
    f = tmp_path / "keys.toml"
    f.write_text('"sk-file" = "low"\n"sk-both" = "low"\n')
    cfg = ServerConfig(tiers={"high": {}, "low": {"priority": 1}}, api_keys_file=str(f),
                       api_keys={"sk-inline": "high"})
    env = {"SERVELAB_API_KEYS": json.dumps({"sk-env": "high", "sk-both": "high"})}
    assert load_api_keys(cfg, env) == {"sk-file": "low", "sk-both": "high", "sk-env": "high", "sk-inline": "high"}


def test_api_keys_errors_never_name_a_key(tmp_path):
    cfg = ServerConfig(tiers={"high": {}})
    with pytest.raises(ValueError) as err:
        load_api_keys(cfg, {"SERVELAB_API_KEYS": json.dumps({"sk-wrong-tier-123": "gold"})})
    assert "gold" in str(err.value) and "sk-wrong" not in str(err.value)
    bad = tmp_path / "keys.json"
    bad.write_text('{"sk-broken-456": ')
    with pytest.raises(ValueError) as err:
        load_api_keys(cfg.model_copy(update={"api_keys_file": str(bad)}), {})
    assert "sk-broken" not in str(err.value)


def test_bearer_header():
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None
    assert bearer("Bearer ") is None
    assert bearer(None) is None


def test_api_keys_are_never_dumped_nor_in_repr():
    cfg = RunConfig(server=ServerConfig(tiers={"high": {}}, api_keys={HIGH_KEY: "high"}, default_tier="high"))
    assert HIGH_KEY not in cfg.model_dump_json()
    assert HIGH_KEY not in json.dumps(cfg.model_dump(mode="json"))
    assert HIGH_KEY not in repr(cfg) and HIGH_KEY not in str(cfg)
    # ...but they reach a launched server through its environment
    assert json.loads(cfg.server.child_env({})["SERVELAB_API_KEYS"]) == {HIGH_KEY: "high"}


def test_config_checks_tiers_named_by_default_tier_and_keys():
    with pytest.raises(ValueError, match="default_tier"):
        ServerConfig(tiers={"high": {}}, default_tier="gold")
    with pytest.raises(ValueError) as err:
        ServerConfig(tiers={"high": {}}, api_keys={"sk-x-999": "gold"})
    assert "sk-x-999" not in err.value.errors()[0]["msg"]  # what the CLI and server print


def test_tier_flags_parse_and_bad_ones_are_user_errors():
    assert parse_tiers("high:0:protected,low:1:rate=5:burst=10") == {
        "high": {"priority": 0, "protected": True}, "low": {"priority": 1, "rate": 5.0, "burst": 10.0}}
    assert parse_mix("high:0.2,low:0.8") == {"high": 0.2, "low": 0.8}
    for bad in ("high", "high:x", "high:0:fast", "high:0,high:1"):
        with pytest.raises(UserError):
            parse_tiers(bad)
    with pytest.raises(UserError):
        parse_mix("high=0.2")


def test_tier_mix_draws_tiers_with_their_shares_reproducibly_per_producer():
    mix = {"high": 0.2, "low": 0.8, "off": 0.0}
    items = {"high": "H", "low": "L", "off": "O"}
    picker = TierPicker(mix, items, seed=0, producer="w0")
    draws = [picker.pick() for _ in range(5000)]
    assert "O" not in draws and 0.17 < draws.count("H") / len(draws) < 0.23
    again = TierPicker(mix, items, seed=0, producer="w0")
    assert [again.pick() for _ in range(5000)] == draws
    other = TierPicker(mix, items, seed=0, producer="w1")
    assert [other.pick() for _ in range(50)] != draws[:50]


def test_tier_keys_come_from_the_environment_and_a_missing_one_names_no_key():
    env = {"SERVELAB_API_KEYS": json.dumps({"sk-b": "high", "sk-a": "high", "sk-c": "low"})}
    assert keys_for({"high": 1, "low": 1}, env) == {"high": "sk-a", "low": "sk-c"}
    with pytest.raises(ValueError) as err:
        keys_for({"gold": 1}, env)
    assert "gold" in str(err.value) and "sk-" not in str(err.value)
    with pytest.raises(ValueError, match="tier_mix"):
        LoadConfig(tier_mix={"high": 0.0})


def test_controller_decisions_by_queue_depth():
    """max_queue alone puts every request in one implicit tier; degrading starts at
    max_queue // 2; a cached answer is never refused; a refusal for overload does not use
    up a rate-limit token."""
    depth = [0]
    plain = AdmissionController(ServerConfig(max_queue=4, overload="degrade", degrade_max_tokens=5),
                                lambda: depth[0], {})
    assert plain.admit(None, 50) == Admitted("default", 0)
    depth[0] = 2
    assert plain.admit(None, 50) == Admitted("default", 0, "max_tokens", 5)
    assert plain.admit(None, 4) == Admitted("default", 0)  # already short: nothing to cut
    depth[0] = 4
    with pytest.raises(Refused) as err:
        plain.admit(None, 50)
    assert (err.value.status, err.value.code, err.value.retry_after_s) == (503, "overloaded", 1)
    assert plain.admit(None, 50, cached=True) == Admitted("default", 0)

    cfg = ServerConfig(tiers={"low": {"priority": 3, "rate": 1.0, "burst": 1}}, default_tier="low", max_queue=1)
    limited = AdmissionController(cfg, lambda: depth[0], {})
    with pytest.raises(Refused):
        limited.admit(None, 8)  # overloaded: the bucket keeps its token
    depth[0] = 0
    assert limited.admit(None, 8) == Admitted("low", 3)
    with pytest.raises(Refused) as err:
        limited.admit(None, 8)
    assert err.value.status == 429

    small_depth = [0]
    cfg = ServerConfig(max_queue=4, overload="degrade", degrade_model="tiny", degrade_max_tokens=5)
    to_small = AdmissionController(cfg, lambda: 3, {}, degrade_waiting=lambda: small_depth[0])
    assert to_small.admit(None, 50).degraded == "model"
    small_depth[0] = 4  # the smaller model's queue is full too: cut max_tokens instead
    assert to_small.admit(None, 50) == Admitted("default", 0, "max_tokens", 5)


# --- real servers ----------------------------------------------------------------------

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
