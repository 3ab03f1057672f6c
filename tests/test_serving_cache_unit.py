"""The exact result cache on its own: keys, TTL, LRU eviction (no server, no model)."""

from serving.cache import ResultCache, Stored, request_key
from serving.generation import Event, GenRequest


def _stored(text: str) -> Stored:
    return Stored((Event(text, "length"),), 1)


def test_only_deterministic_requests_have_a_key():
    assert request_key(GenRequest([1, 2], 4, temperature=0)) is not None
    assert request_key(GenRequest([1, 2], 4, temperature=0.8, seed=3)) is not None
    assert request_key(GenRequest([1, 2], 4, temperature=0.8)) is None


def test_key_covers_what_changes_the_output():
    base = GenRequest([1, 2], 4, temperature=0)
    others = [GenRequest([1, 3], 4, temperature=0), GenRequest([1, 2], 5, temperature=0),
              GenRequest([1, 2], 4, temperature=0, stop=("x",)), GenRequest([1, 2], 4, temperature=0, ignore_eos=True),
              GenRequest([1, 2], 4, temperature=0, min_tokens=2),
              GenRequest([1, 2], 4, temperature=0, endpoint="chat")]
    assert len({request_key(r) for r in [base, *others]}) == len(others) + 1
    # Greedy output ignores the seed and the arrival time.
    assert request_key(GenRequest([1, 2], 4, temperature=0, seed=9, t_recv_ns=5)) == request_key(base)
    assert request_key(GenRequest([1, 2], 4, temperature=0.5, seed=1)) != request_key(
        GenRequest([1, 2], 4, temperature=0.5, seed=2))


def test_entries_expire_after_the_ttl():
    now = [100.0]
    cache = ResultCache(size=4, ttl_s=10, clock=lambda: now[0])
    cache.put("k", _stored("a"))
    now[0] = 109.9
    assert cache.get("k").events[0].text == "a"
    now[0] = 110.0
    assert cache.get("k") is None
    assert len(cache) == 0


def test_least_recently_used_entry_is_evicted_first():
    cache = ResultCache(size=2, ttl_s=60)
    cache.put("a", _stored("a"))
    cache.put("b", _stored("b"))
    assert cache.get("a") is not None  # "a" is now the most recently used
    cache.put("c", _stored("c"))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert len(cache) == 2
