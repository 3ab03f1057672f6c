"""Frontier page: latency percentile against $ per 1M output tokens for every (setup, load) of a
sweep, the Pareto set joined, dominated points grey; the same figures as `servelab frontier`."""

from typing import Any

import streamlit as st

from analysis.cost import setup_usd_per_hour
from dashboard import cost_views, pricing
from analysis.prices import describe

st.title("Frontier")
sweep = pricing.pick_sweep()
left, mid, right, far = st.columns(4)
metric = left.selectbox("latency", list(cost_views.LATENCIES), help="TTFT: time to first token; TPOT: time per "
                        "output token after the first; ITL: gap between chunks; E2E: whole request")
stat = mid.selectbox("percentile", cost_views.STATS, index=3, help="the percentile of the metric over each "
                     "load's measured requests (repeats of the same load averaged)")
chosen = pricing.pricing_select(right)
slo_only = far.checkbox("SLO-meeting loads only", help="leave out loads that missed the SLO before the Pareto "
                        "set is taken (servelab frontier --slo-only)")
latency = f"{cost_views.LATENCIES[metric]}_{stat}"
report = pricing.frontier(sweep, chosen, latency=latency, slo_only=slo_only)
prices, front = report["prices"], report["frontier"]
pricing.overrides_note(sweep)

frame = cost_views.frontier_frame(front, sweep)
label = f"{metric} {stat}"
unpriced = [n for n, p in prices.items() if p.get("usd_per_hour") is None]
if unpriced:
    st.warning("No price, so no $ figures, for: " + "; ".join(f"**{n}** ({describe(prices[n])})" for n in unpriced)
               + ". Set one on the **Hardware and prices** page.")
if frame.empty or frame["usd_per_1m_output_tokens"].isna().all():
    st.info("Nothing to draw yet: no setup has both a price and a measured load.")
    st.stop()

event: Any = st.plotly_chart(cost_views.frontier_chart(frame, label), key="frontier", on_select="rerun",
                        selection_mode="points")
st.caption("Each marker is one load of one setup (its repeats averaged). Coloured: on the Pareto frontier "
           "(no other point is both faster and cheaper); grey: dominated. Hollow: the load missed the SLO. "
           "Hover for the runs; click a marker (or use the table below) to open them.")
selection = dict(event.get("selection") or {}) if event else {}
picked = [p for p in selection.get("points") or [] if p.get("customdata")]
for p in picked:
    runs = str(p["customdata"][0]).split()
    links = ", ".join(f"[{r}](run?run={r})" for r in runs) or "no stored run"
    st.markdown(f"Runs of **{p['customdata'][5]}** at **{p['customdata'][1]:g} {p['customdata'][2]}**: {links}")
st.dataframe(frame.drop(columns=["run_ids"]), hide_index=True, width="stretch", column_config={
    "run": st.column_config.LinkColumn("run", display_text=r"run\?run=(.*)",
                                       help="the first repeat's run at this load (all of them: CSV `run_ids`)"),
    "latency_ms": st.column_config.NumberColumn(f"{label} ms", format="%.1f",
                                                help=f"{label} of the load's requests, mean over its repeats"),
    "usd_per_1m_output_tokens": st.column_config.NumberColumn(
        "$/1M out", format="$%.4g", help="$ per hour / (output tokens/s x 3600) x 1e6, at this load's own "
        "output tokens/s (spot: $/h divided by 1 - 0.05 interruption overhead)"),
    "req_s": st.column_config.NumberColumn("req/s", format="%.2f", help="achieved requests/s over the steady window"),
    "output_tok_s": st.column_config.NumberColumn("out tok/s", format="%.1f",
                                                  help="output tokens/s over the steady window"),
    "pareto": st.column_config.CheckboxColumn("frontier", help="no other point is no worse on both axes and "
                                              "better on one"),
    "dominated_by": st.column_config.TextColumn("dominated by", help="the cheapest point that dominates it"),
    "slo_met": st.column_config.CheckboxColumn("SLO met", help="every repeat at this load met every SLO term"),
    "load": st.column_config.NumberColumn("load", help="offered load: req/s (open loop) or users (closed loop)"),
})
st.download_button("frontier (CSV)", frame.to_csv(index=False), f"{sweep['sweep_id']}-frontier-{latency}.csv",
                   "text/csv")

st.subheader("Cost at capacity within the SLO (one copy)")
table = cost_views.cost_frame(report["costs"])
ci = "95% interval from the capacity's interval (the $ bounds swap: more capacity, fewer $)"
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "usd_per_hour": st.column_config.NumberColumn("$/hour", format="$%.4g", help="replicas x price per hour "
                                                  "(spot: / (1 - 0.05))"),
    "usd_per_month": st.column_config.NumberColumn("$/month", format="$%.2f", help="$/hour x 730 h"),
    "usd_per_1m_output_tokens": st.column_config.NumberColumn(
        "$/1M out", format="$%.4g", help="$/hour / (output tok/s at capacity x 3600) x 1e6"),
    "usd_per_1m_total_tokens": st.column_config.NumberColumn(
        "$/1M total", format="$%.4g", help="$/hour / (capacity req/s x (prompt + output tokens per request) "
        "x 3600) x 1e6"),
    "usd_per_1k_requests": st.column_config.NumberColumn("$/1k req", format="$%.4g",
                                                         help="$/hour / (capacity req/s x 3600) x 1e3"),
    **{f"{k}_ci_{e}": st.column_config.NumberColumn(f"{e}", format="$%.4g", help=ci)
       for k in ("usd_per_1m_output_tokens", "usd_per_1m_total_tokens", "usd_per_1k_requests") for e in ("low", "high")},
})
st.download_button("cost (CSV)", table.to_csv(index=False), f"{sweep['sweep_id']}-cost.csv", "text/csv")
for name, p in prices.items():
    per_hour = "" if p.get("usd_per_hour") is None else (
        f"{cost_views.usd(setup_usd_per_hour(p, 1))}/h {p.get('pricing')}, ")
    st.caption(f"**{name}**: {per_hour}{describe(p)}")
