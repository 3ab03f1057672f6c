"""Admission control, the pure parts: token bucket, priority queue, key loading, flags,
config dumps, the tier mix and the controller's decisions (no server, no sockets).

The same levers against real servers: tests/test_serving_admission.py.
"""

from __future__ import annotations

import json

import pytest

from loadtest.tiers import TierPicker, keys_for
from servelab.admission_flags import parse_mix, parse_tiers
from servelab.config import LoadConfig, RunConfig, ServerConfig
from servelab.errors import UserError
from serving.admission import AdmissionController, Admitted, Refused, TokenBucket, bearer, load_api_keys
from serving.generation import GenRequest
from serving.jobqueue import JobQueue

HIGH_KEY = "sk-high-7f3a9c"


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
