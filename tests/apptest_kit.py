"""What the dashboard's AppTest files share: a store holding the decision fixtures' sweep, and
the check that a page rendered without an exception or an error box."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import clear_caches
import decision_fixtures as dfx


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A store holding the fixture sweep, named by SERVELAB_STORE; Streamlit's caches cleared around the test."""
    path = tmp_path / "s.duckdb"
    dfx.add_sweep(path)
    monkeypatch.setenv("SERVELAB_STORE", str(path))
    clear_caches()
    yield path
    clear_caches()


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
