"""Arrival schedules: counts, bounds, seeded reproducibility, Poisson statistics."""

import itertools

import numpy as np
import pytest

from loadtest import offsets, schedules
from servelab.config import LoadConfig

NS = 1_000_000_000


def test_constant_offsets_are_exact_multiples_of_the_gap():
    assert list(schedules.constant(4, 1.0)) == [0, 250_000_000, 500_000_000, 750_000_000]


def test_constant_count_is_rate_times_duration_and_stays_inside_the_step():
    offsets = list(schedules.constant(7, 3.0))
    assert len(offsets) == 21
    assert offsets[-1] < 3 * NS
    assert offsets == sorted(offsets)


def test_constant_has_no_rounding_drift_over_a_long_step():
    offsets = list(schedules.constant(3, 1000.0))  # gap 333_333_333.3 ns
    assert len(offsets) == 3000
    assert offsets[-1] == round(2999 * NS / 3)


def test_max_requests_caps_both_policies():
    assert len(list(schedules.constant(100, 10, max_requests=5))) == 5
    assert len(list(schedules.poisson(100, 10, seed=1, max_requests=5))) == 5


def test_poisson_same_seed_same_offsets_other_seed_other_offsets():
    a = list(schedules.poisson(50, 5, seed=7))
    assert a == list(schedules.poisson(50, 5, seed=7))
    assert a != list(schedules.poisson(50, 5, seed=8))


def test_poisson_is_increasing_integers_inside_the_step():
    offsets = list(schedules.poisson(200, 2, seed=3))
    assert all(isinstance(t, int) for t in offsets)
    assert all(b > a for a, b in itertools.pairwise(offsets))
    assert 0 < offsets[0] and offsets[-1] < 2 * NS


def test_poisson_mean_gap_and_count_match_the_rate():
    rate, duration = 100.0, 200.0
    offsets = np.array(list(schedules.poisson(rate, duration, seed=0)))
    gaps = np.diff(offsets) / NS
    # 20_000 arrivals: the mean gap's standard error is 0.7%, so 3% is a safe bound.
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.03)
    assert len(offsets) == pytest.approx(rate * duration, rel=0.03)
    # Exponential gaps: the standard deviation equals the mean.
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.05)


def test_schedules_are_lazy_for_long_steps():
    week = schedules.poisson(1000, 7 * 24 * 3600, seed=0)
    assert len(list(itertools.islice(week, 10))) == 10


def test_schedule_for_follows_the_load_config():
    const = LoadConfig(mode="open", rate=10, arrival="constant", duration_s=1)
    assert list(schedules.schedule_for(const)) == list(schedules.constant(10, 1))
    pois = LoadConfig(mode="open", rate=10, arrival="poisson", duration_s=5, seed=4, max_requests=3)
    assert list(schedules.schedule_for(pois)) == list(schedules.poisson(10, 5, seed=4, max_requests=3))


def test_schedule_for_rejects_closed_loop():
    with pytest.raises(ValueError, match="open-loop"):
        schedules.schedule_for(LoadConfig(mode="closed", users=4))


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        schedules.constant(0, 1)


def test_exact_count_offers_the_rate_asked_for_and_random_does_not():
    # 20 req/s for 20 s asks for 400; the unconditioned process with seed 0 offers 363.
    assert len(list(schedules.poisson(20, 20, seed=0))) == 400
    assert len(list(schedules.poisson(20, 20, seed=0, exact=False))) == 363
    for seed in range(5):
        assert len(list(schedules.gamma(7.5, 13, 0.5, seed=seed))) == round(7.5 * 13)


def test_exact_count_keeps_poisson_gaps_exponential():
    from scipy import stats

    offsets = np.array(list(schedules.poisson(50, 200, seed=2))) / NS
    assert len(offsets) == 10_000 and 0 <= offsets[0] and offsets[-1] < 200
    gaps = np.diff(offsets)
    assert stats.kstest(gaps, "expon", args=(0, 1 / 50)).pvalue > 0.01


def test_exact_count_is_chunked_for_long_steps_and_stays_sorted_and_exact():
    n = 3 * offsets.CHUNK + 17  # several chunks, multinomial counts
    t = np.array(list(schedules.exact_offsets(n, 100.0, 1.0, seed=4)))
    assert len(t) == n and (np.diff(t) >= 0).all() and 0 <= t[0] and t[-1] < 100.0
    # the chunks join seamlessly: each quarter of the span holds about a quarter
    quarters = np.histogram(t, bins=4, range=(0, 100))[0]
    assert np.allclose(quarters, n / 4, rtol=0.02)


def test_schedule_for_takes_the_count_option_from_the_config():
    exact = LoadConfig(mode="open", rate=20, duration_s=20)
    random = LoadConfig(mode="open", rate=20, duration_s=20, arrival_count="random")
    assert len(list(schedules.schedule_for(exact))) == 400
    assert len(list(schedules.schedule_for(random))) == 363
