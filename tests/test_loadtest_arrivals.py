"""Arrival policies: gamma burstiness, linear and step ramps, trace replay, and the config."""

import itertools
import json

import numpy as np
import pytest
from pydantic import ValidationError

from loadtest import arrivals, schedules
from servelab.config import LoadConfig

NS = 1_000_000_000


def gaps_s(offsets) -> np.ndarray:
    return np.diff(np.array(list(offsets))) / NS


@pytest.mark.parametrize("shape", [0.25, 1.0, 4.0])
def test_gamma_mean_gap_is_one_over_rate_and_cv2_is_one_over_shape(shape):
    g = gaps_s(schedules.gamma(100, 400, shape, seed=0))  # ~40k gaps
    assert g.mean() == pytest.approx(0.01, rel=0.03)
    assert (g.std() / g.mean()) ** 2 == pytest.approx(1 / shape, rel=0.08)


def test_gamma_is_seeded_increasing_and_bounded():
    a = list(schedules.gamma(50, 5, 0.5, seed=3))
    assert a == list(schedules.gamma(50, 5, 0.5, seed=3)) != list(schedules.gamma(50, 5, 0.5, seed=4))
    assert all(isinstance(t, int) for t in a) and all(y >= x for x, y in itertools.pairwise(a))
    assert a[-1] < 5 * NS
    assert len(list(schedules.gamma(50, 5, 0.5, seed=3, max_requests=7))) == 7


def test_linear_ramp_count_is_the_mean_rate_times_duration_and_rises():
    t = np.array(list(arrivals.linear_ramp(10, 90, 200, seed=1))) / NS  # expected 50/s * 200 s
    assert len(t) == pytest.approx(10_000, rel=0.03)
    # r(t) = 10 + 0.4 t: the first 20 s expect 20*(10+18)/2 = 280, the last 20 s 20*(82+90)/2 = 1720
    assert (t < 20).sum() == pytest.approx(20 * (10 + 18) / 2, rel=0.15)
    assert (t >= 180).sum() == pytest.approx(20 * (82 + 90) / 2, rel=0.08)
    assert t.max() < 200


def test_falling_ramp_and_flat_ramp():
    falling = np.array(list(arrivals.linear_ramp(100, 20, 100, seed=2))) / NS
    assert len(falling) == pytest.approx(6000, rel=0.03)
    # r(t) = 100 - 0.8 t: the first half expects 50*(100+60)/2 = 4000, the second 50*(60+20)/2 = 2000
    assert (falling < 50).sum() == pytest.approx(4000, rel=0.05)
    assert (falling >= 50).sum() == pytest.approx(2000, rel=0.07)
    flat = list(arrivals.linear_ramp(20, 20, 50, seed=5))
    assert len(flat) == pytest.approx(1000, rel=0.1)


def test_rate_steps_counts_per_segment_and_silent_zero_rate_segment():
    t = np.array(list(arrivals.rate_steps([(20, 50), (0, 10), (200, 50)], 1000, seed=0))) / NS
    assert ((t >= 50) & (t < 60)).sum() == 0
    assert (t < 50).sum() == pytest.approx(1000, rel=0.1)
    assert (t >= 60).sum() == pytest.approx(10_000, rel=0.04)
    assert t.max() < 110  # nothing after the last segment


def test_rate_steps_are_cut_by_the_step_duration():
    t = list(arrivals.rate_steps([(100, 5), (100, 5)], 3, seed=0))
    assert max(t) < 3 * NS and len(t) == pytest.approx(300, rel=0.2)


def test_trace_replay_offsets_are_trace_times_over_the_time_scale():
    t_s = np.array([0.0, 0.5, 60.0, 61.5, 3599.0])
    assert list(arrivals.trace_replay(t_s, 1.0, 0.0, 10_000)) == [0, 500_000_000, 60 * NS, 61_500_000_000, 3599 * NS]
    sped_up = [0, round(0.5 / 60 * NS), NS, 1_025_000_000, round(3599 / 60 * NS)]
    assert list(arrivals.trace_replay(t_s, 60.0, 0.0, 100)) == sped_up


def test_trace_replay_start_offset_duration_and_max_requests():
    t_s = np.arange(0, 100, 1.0)
    assert list(arrivals.trace_replay(t_s, 10.0, 50.0, 1.0)) == [k * 100_000_000 for k in range(10)]
    assert arrivals.trace_first_row(t_s, 50.0) == 50
    assert len(list(arrivals.trace_replay(t_s, 1.0, 0.0, 1000, max_requests=3))) == 3


def test_schedule_for_dispatches_every_arrival_policy():
    base = {"mode": "open", "duration_s": 20, "seed": 1}
    gamma = LoadConfig(**base, rate=10, arrival="gamma", burstiness=0.5)
    assert list(schedules.schedule_for(gamma)) == list(schedules.gamma(10, 20, 0.5, seed=1))
    ramp = LoadConfig(**base, rate=5, arrival="ramp", rate_end=15)
    assert list(schedules.schedule_for(ramp)) == list(arrivals.linear_ramp(5, 15, 20, seed=1))
    steps = LoadConfig(**base, arrival="steps", rate_steps=[(5, 10), (20, 10)])
    assert list(schedules.schedule_for(steps)) == list(arrivals.rate_steps([(5, 10), (20, 10)], 20, seed=1))
    trace = LoadConfig(**base, arrival="trace", trace_path="x.csv", time_scale=2, trace_start_s=1)
    assert list(schedules.schedule_for(trace, np.array([0.0, 1.0, 3.0]))) == [0, NS]
    with pytest.raises(ValueError, match="timestamps"):
        schedules.schedule_for(trace)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "open", "arrival": "ramp", "rate": 1}, "a ramp needs rate_end"),
        ({"mode": "open", "arrival": "steps"}, "steps arrivals need rate_steps"),
        ({"mode": "open", "arrival": "steps", "rate_steps": [(5, 0)]}, "each duration > 0"),
        ({"mode": "open", "arrival": "trace"}, "arrival 'trace' needs a trace_path"),
        ({"mode": "closed", "workload": "trace"}, "workload 'trace' needs a trace_path"),
        ({"mode": "closed", "arrival": "gamma"}, "gamma arrivals are open-loop"),
        ({"mode": "open", "rate": 2, "think_time_s": 1}, "think time is for closed-loop"),
        ({"mode": "open", "arrival": "gamma", "rate": 2, "burstiness": 0}, "greater than 0"),
        ({"mode": "open", "arrival": "trace", "trace_path": "t", "time_scale": -1}, "greater than 0"),
    ],
)
def test_bad_load_configs_fail_with_one_clear_line(fields, message):
    with pytest.raises(ValidationError) as info:
        LoadConfig(**fields)
    err = info.value.errors()[0]["msg"]
    assert message in err and "\n" not in err


def test_trace_arrivals_need_no_rate_and_closed_loop_takes_think_time():
    assert LoadConfig(mode="open", arrival="trace", trace_path="t.csv").rate is None
    assert LoadConfig(mode="closed", users=4, think_time_s=0.5).think_time_s == 0.5


@pytest.mark.slow
def test_think_time_spaces_each_users_requests(cli, tmp_path):
    from store import queries

    res = cli("run", "--calibration", "--calib-ttft-ms", "5", "--calib-itl-ms", "1", "--users", "2",
              "--think-time", "0.2", "--duration", "2", "--max-tokens", "4", "--prompt-tokens", "16",
              "--store", "s.duckdb", "--json", timeout=120)
    assert res.returncode == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    req = queries.get_requests(str(tmp_path / "s.duckdb"), run_id)
    assert set(req["user_id"]) == {0, 1}
    for _, user in req.sort_values("t_send_ns").groupby("user_id"):
        sends, lasts = user["t_send_ns"].to_numpy(dtype=np.int64), user["t_last_ns"].to_numpy(dtype=np.int64)
        pauses_s = (sends[1:] - lasts[:-1]) / NS
        assert len(sends) >= 5 and pauses_s.min() >= 0.2  # each user waits its think time
        assert np.median(pauses_s) < 0.25


def test_ramps_and_steps_offer_exactly_their_mean_count():
    assert len(list(arrivals.linear_ramp(10, 90, 20, seed=3))) == 1000
    assert len(list(arrivals.rate_steps([(5, 10), (0, 5), (20, 10)], 25, seed=3))) == 250
    # cut by the step's duration: only the part of the schedule inside the step counts
    assert len(list(arrivals.rate_steps([(10, 10), (30, 10)], 15, seed=1))) == 100 + 150
    assert len(list(arrivals.linear_ramp(10, 90, 20, seed=3, exact=False))) != 1000
