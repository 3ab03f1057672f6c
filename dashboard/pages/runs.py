"""Runs page: every run in the store, newest first, with a link to each."""

import pandas as pd
import streamlit as st

from dashboard import data

st.title("Runs")
path = data.store_path()
st.caption(f"store: `{path}`")
rows = data.guarded(data.runs, path)
if not rows:
    st.info("No runs yet. Start one with `servelab run --target builtin --rate 2 --duration 10`.")
    st.stop()

frame = pd.DataFrame(rows)
frame["open"] = "run?run=" + frame["run_id"]
cols = [c for c in ("open", "run_id", "status", "started_at", "label", "target", "mode", "users",
                    "rate", "requests") if c in frame.columns]
st.dataframe(
    frame[cols],
    hide_index=True,
    width="stretch",
    column_config={"open": st.column_config.LinkColumn("open", display_text="open")},
)
counts = frame["status"].value_counts()
st.caption("  ·  ".join(f"{k}: {v}" for k, v in counts.items()))
