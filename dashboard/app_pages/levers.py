"""Levers page: what each setup bought against a chosen baseline, with 95% intervals and
"no measurable change" where the interval holds no change; the attribution `servelab frontier
--baseline NAME` prints, and a fidelity column where the sweep result carries a report."""

import streamlit as st

from dashboard import cost_views, pricing

st.title("Levers")
sweep = pricing.pick_sweep()
names = [s["name"] for s in sweep["setups"]]
if len(names) < 2:
    st.info("This sweep has one setup: there is nothing to compare it with.")
    st.stop()
left, right = st.columns(2)
baseline = left.selectbox("baseline setup", names, help="every other setup is compared with this one "
                          "(servelab frontier --baseline NAME)")
chosen = pricing.pricing_select(right)
att = pricing.frontier(sweep, chosen, baseline=baseline)["attribution"]
pricing.overrides_note(sweep)
frame = cost_views.attribution_frame(att, pricing.with_fidelity(sweep))

shown = cost_views.attribution_display(att, frame)
if shown["fidelity"].isna().all():  # an empty column reads as missing data: say where reports come from
    shown = shown.drop(columns=["fidelity"])
st.dataframe(shown, hide_index=True, width="stretch", column_config={
    "capacity": st.column_config.TextColumn(
        "capacity", help="mean capacity over the repeats / the baseline's, [95% interval] (delta method on the "
        "log ratio, Welch's t); none when either setup's capacity is only a bound"),
    "$/1M out": st.column_config.TextColumn(
        "$/1M out", help="% change of $ per 1M output tokens at capacity: ($/h ratio) / (output tok/s ratio) - 1"),
    "TTFT p99": st.column_config.TextColumn(
        "TTFT p99", help="% change of TTFT p99 at the highest load both measured in every repeat where the "
        "baseline met the SLO (else each at its own highest SLO-meeting load)"),
    "TPOT p99": st.column_config.TextColumn("TPOT p99", help="% change of TPOT p99, at the same load as TTFT"),
    "latency at": st.column_config.TextColumn("latency at", help="the load the latency figures compare at"),
    "fidelity": st.column_config.NumberColumn(
        "fidelity", format="percent", help="greedy answers equal to the baseline's, share of the fixed prompts "
        "(servelab fidelity); empty where neither the sweep result nor a report uploaded on the Recommend page "
        "has one"),
})
st.caption('"no measurable change": the 95% interval contains no change. "no interval": fewer than two repeats '
           "on a side. Intervals need the sweep's repeats (`repeats:` in the sweep file)."
           + ("" if "fidelity" in shown else " No fidelity figures: compare answers with `servelab fidelity --json` "
              "and upload the report on the **Recommend** page."))
st.download_button("attribution (CSV)", frame.to_csv(index=False), f"{sweep['sweep_id']}-levers-{baseline}.csv",
                   "text/csv")

figures = {"capacity ratio": ("capacity_ratio", 1.0), "$/1M output tokens, % change": (
    "usd_per_1m_output_tokens_pct", 0.0), "TTFT p99, % change": ("ttft_p99_pct", 0.0),
    "TPOT p99, % change": ("tpot_p99_pct", 0.0)}
shown = st.radio("chart", list(figures), horizontal=True, help="the figure drawn with its 95% interval; the dashed "
                 "line is no change")
key, none_at = figures[shown]
st.plotly_chart(cost_views.attribution_chart(frame, key, shown, none_at), key="levers")
