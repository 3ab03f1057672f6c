"""Live page: a run or sweep in progress, its finished points read again every few seconds.

Only the fragment below reruns on its timer (st.fragment(run_every=...)); each pass opens the
store read-only for a moment and closes it (dashboard/live_views.py), so the writer ingesting
the run is never held up for long, and a store it holds shows "live data delayed" with the
spool files' counts instead of waiting.
"""

from datetime import timedelta

import streamlit as st

from dashboard import data, live_views, sweep_views

st.title("Live")
path = data.store_path()
every = st.select_slider("refresh every (s)", [1, 2, 5, 10, 30], value=2,
                         help="how often this section reads the store again (one short read-only open each time)")
KNOWN = "live-known-runs"  # session_state: the runs the last good read saw running


@st.fragment(run_every=timedelta(seconds=every))
def live() -> None:
    snap = live_views.snapshot(path)
    if snap["delayed"]:
        st.warning(f"Live data delayed: {snap['delayed']}. A writer holds the store; the dashboard gives way "
                   "and shows what the spool files hold instead.", icon="⏳")
        spooled = live_views.spool_frame(path, st.session_state.get(KNOWN, []))
        st.dataframe(spooled, hide_index=True, column_config={
            "requests spooled": st.column_config.NumberColumn(help="request records written to the run's spool "
                                                              "files and not yet ingested")})
        st.caption(f"read at {snap['read_at']} UTC")
        return
    if snap["runs"] is None or (not snap["runs"] and not snap["sweeps"]):
        st.info(f"No runs in this store yet. {data.START_HINT}")
        return
    running = live_views.running_runs_frame(path, snap["runs"])
    st.session_state[KNOWN] = [u.removeprefix("run?run=") for u in running["run"]]
    st.subheader("Runs in progress")
    if running.empty:
        st.caption("No run is running now.")
    else:
        st.dataframe(running, hide_index=True, width="stretch", column_config={
            "run": st.column_config.LinkColumn("run", display_text=r"run\?run=(.*)", help="open the run"),
            "steps ingested": st.column_config.NumberColumn(help="steps whose requests are in the store"),
            "requests ingested": st.column_config.NumberColumn(help="requests in the store (finished steps)"),
            "requests spooled": st.column_config.NumberColumn(help="requests the load generator has written to "
                                                              "its spool files and the store has not ingested yet")})
    sweep = live_views.pick_sweep(snap["sweeps"] or [])
    if sweep is not None:
        _sweep(sweep)
    st.caption(f"read at {snap['read_at']} UTC · every {every} s")


def _sweep(row: dict) -> None:
    running = row.get("status") == "running"
    st.subheader(f"Sweep {row['sweep_id']} ({row.get('name')}): {row.get('status')}, {row.get('points', 0)} points"
                 + ("" if running else " (the newest; none running)"))
    result = data.guarded(data.sweep_result, path, row["sweep_id"], (row.get("status"), row.get("points")))
    st.plotly_chart(sweep_views.latency_vs_load(result, "TTFT", "p99", []), key="live-latency")
    points = sweep_views.points_frame(result)
    st.download_button("points so far (CSV)", points.to_csv(index=False), f"{row['sweep_id']}-points.csv",
                       "text/csv", key="live-csv")
    st.dataframe(points, hide_index=True, width="stretch", column_config={
        "slo_met": st.column_config.CheckboxColumn("SLO met", help="every SLO term held at this point"),
        "req_s": st.column_config.NumberColumn("req/s", format="%.2f", help="achieved ok requests/s over the "
                                               "steady window"),
    })
    st.caption("TTFT p99 of each finished point against its load; hollow markers missed the SLO.")


live()
