"""What the dashboard's AppTest files share: a store holding the decision fixtures' sweep, and
the check that a page rendered without an exception or an error box."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import decision_fixtures as dfx


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A store holding the fixture sweep, named by SERVELAB_STORE; Streamlit's caches cleared around the test."""
    path = tmp_path / "s.duckdb"
    dfx.add_sweep(path)
    monkeypatch.setenv("SERVELAB_STORE", str(path))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield path
    st.cache_data.clear()
    st.cache_resource.clear()


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
