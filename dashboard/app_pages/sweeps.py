"""Sweeps page: every sweep, and per sweep the capacity per setup with its interval,
latency against load with the SLO lines, and SLO attainment per point."""

import streamlit as st

from analysis.slo import parse_slo
from dashboard import pricing, sweep_views

st.title("Sweeps")
result = pricing.pick_sweep()  # the selector every sweep page shares (`sweep` query parameter)
sweep_id = result["sweep_id"]

search = result.get("search") or {}
st.caption("  ·  ".join(p for p in (
    f"SLO `{result['slo']}`", f"status **{result['status']}**",
    f"{result['repeats']} repeat(s) of {result.get('duration_s')} s points",
    f"search {search.get('kind')}" + (f" {search.get('low')}–{search.get('high')} req/s, tolerance "
                                      f"{search.get('rel_tol')}" if search.get("kind") == "capacity" else ""),
    f"{result['points_total']} points",
) if p))
if result["status"] == "running":
    st.info("This sweep is still running: its finished points are shown, and the page reads them again "
            "every few seconds (reload).")

st.subheader("Capacity at the SLO")
cap = sweep_views.capacity_frame(result)
st.plotly_chart(sweep_views.capacity_chart(result), key="capacity")
st.dataframe(cap, hide_index=True, width="stretch", column_config={
    "capacity_req_s": st.column_config.NumberColumn(
        "capacity req/s", format="%.2f",
        help="the highest offered open-loop rate at which the SLO held: the mean of the repeats' estimates"),
    "ci_low": st.column_config.NumberColumn("95% low", format="%.2f",
                                            help="Student's t over the repeats (bootstrap from 8 repeats)"),
    "ci_high": st.column_config.NumberColumn("95% high", format="%.2f"),
    "capacity_output_tok_s": st.column_config.NumberColumn(
        "capacity output tok/s", format="%.1f", help="capacity x output tokens per request near it"),
    "points": st.column_config.NumberColumn("points", help="measured points (runs) the search cost"),
})
st.download_button("capacity (CSV)", cap.to_csv(index=False), f"{sweep_id}-capacity.csv", "text/csv")

st.subheader("Latency against load")
terms = parse_slo(result["slo"])
left, right = st.columns(2)
metric = left.selectbox("metric", list(sweep_views.METRICS), index=0)
quantile = right.selectbox("percentile", ["p50", "p90", "p95", "p99", "p999"], index=3)
lines = [t.threshold_ms for t in terms
         if t.metric == metric.lower() and f"p{t.percentile:g}".replace(".", "") == quantile]
st.plotly_chart(sweep_views.latency_vs_load(result, metric, quantile, lines), key="latency")
st.download_button("latency against load (CSV)", sweep_views.latency_frame(result).to_csv(index=False),
                   f"{sweep_id}-latency.csv", "text/csv", key="latency-csv")
st.caption("Hollow markers missed the SLO. Every point is a run: hover for its id, open it on the Run page.")

st.subheader("SLO attainment per point")
st.plotly_chart(sweep_views.attainment_chart(result), key="attainment")
st.caption("Attainment: the share of a point's measured requests that met every SLO term (errors count as "
           "misses); its data is in the points CSV below.")
points = sweep_views.points_frame(result)
st.dataframe(points, hide_index=True, width="stretch", column_config={
    "margin": st.column_config.NumberColumn("margin", format="%.2f",
                                            help="max over SLO terms of value / threshold: <= 1 met the SLO"),
    "slo_attainment": st.column_config.NumberColumn("attainment", format="%.3f",
                                                    help="measured requests that met every term (errors miss)"),
})
st.download_button("points (CSV)", points.to_csv(index=False), f"{sweep_id}-points.csv", "text/csv")
