"""analysis/fidelity.py: exact-match rate, token agreement, first divergence."""

from __future__ import annotations

import pytest

from analysis.fidelity import compare_outputs, first_divergence


def test_identical_outputs():
    r = compare_outputs([[1, 2, 3], [4]], [[1, 2, 3], [4]])
    assert r == {"prompts": 2, "exact_match_rate": 1.0, "token_agreement": 1.0, "mean_first_divergence": 2.0}


def test_partial_agreement_counts_length_differences_as_misses():
    # prompt 1: 2 of 4 agree (differs at 2); prompt 2: prefix of length 2 of 3 (2 agree of 3)
    r = compare_outputs([[1, 2, 3, 4], [5, 6, 7]], [[1, 2, 9, 4], [5, 6]])
    assert r["exact_match_rate"] == 0.0
    assert r["token_agreement"] == pytest.approx((3 + 2) / (4 + 3))
    assert r["mean_first_divergence"] == pytest.approx((2 + 2) / 2)
    assert first_divergence("abc", "abd") == 2


def test_mismatched_prompt_counts_and_empty():
    with pytest.raises(ValueError):
        compare_outputs([[1]], [])
    assert compare_outputs([], [])["exact_match_rate"] is None
