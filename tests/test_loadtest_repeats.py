"""`LoadConfig.repeat_rate`: the share of bodies that repeat a recent one, and what they are."""

import json

from loadtest import prompts
from servelab.config import LoadConfig


def _bodies(rate: float, n: int, producer: str = "w0") -> tuple[prompts.BodyFactory, list[bytes]]:
    factory = prompts.BodyFactory(LoadConfig(repeat_rate=rate, prompt_tokens=16, max_tokens=4), True, producer)
    return factory, [factory.next_body().data for _ in range(n)]


def test_repeats_come_at_the_configured_fraction():
    factory, bodies = _bodies(0.3, 4000)
    repeated = sum(1 for i, b in enumerate(bodies) if b in set(bodies[max(0, i - 200):i]))
    assert factory.repeats == repeated
    assert abs(repeated / len(bodies) - 0.3) < 0.03


def test_a_repeat_is_one_of_the_last_32_fresh_bodies():
    _, bodies = _bodies(0.5, 2000)
    fresh: list[bytes] = []
    for body in bodies:
        if body in fresh:
            assert body in fresh[-prompts.REPEAT_WINDOW:]
        else:
            fresh.append(body)


def test_no_repeats_by_default_and_fresh_prompts_do_not_depend_on_the_rate():
    _, plain = _bodies(0.0, 300)
    assert len(set(plain)) == 300
    _, mixed = _bodies(0.5, 300)
    fresh = list(dict.fromkeys(mixed))
    assert fresh == plain[:len(fresh)]


def test_repeated_bodies_are_greedy_so_a_server_may_cache_them():
    _, bodies = _bodies(0.5, 50)
    assert all(json.loads(b)["temperature"] == 0 for b in bodies)
