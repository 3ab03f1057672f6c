"""Runs page: every run in the store, newest first, each id a link to its Run page."""

import streamlit as st

from dashboard import data, views

st.title("Runs")
path = data.store_path()
st.caption(f"store: `{path}`")
rows = data.guarded(data.runs, path)
if not rows:
    st.info(f"No runs in this store yet. {data.START_HINT}")
    st.stop()

table = views.runs_table(rows)
counts = table["status"].value_counts()
st.caption(f"{len(table)} run{'s' * (len(table) != 1)}: "
           + ", ".join(f"{v} {k}" for k, v in counts.items())
           + ". Click a run id to open it in a new tab, or pick one on the **Run** page.")
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "run": st.column_config.LinkColumn("run", display_text=r"run\?run=(.*)",
                                           help="open the run's latency and throughput"),
        "load": st.column_config.TextColumn("load", help="open loop: arrival rate; closed loop: concurrent users"),
        "requests": st.column_config.NumberColumn("requests", help="requests recorded (every status)"),
        "started": st.column_config.TextColumn("started (UTC)"),
        "duration_s": st.column_config.NumberColumn("duration (s)", format="%.0f",
                                                    help="wall time from start to end; empty while running"),
    },
)
