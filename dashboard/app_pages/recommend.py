"""Recommend page: the cheapest setup and copies that serve a traffic within the SLO, with its
reasoning, the runner-up and why the others lost: `servelab recommend --json`'s object for the
same inputs (the test compares them)."""

import json

import streamlit as st

from dashboard import pricing, recommend_views
from dashboard.cost_views import usd

st.title("Recommend")
sweep = pricing.pick_sweep()
c1, c2, c3 = st.columns(3)
traffic = c1.number_input("traffic (req/s)", min_value=0.001, value=1.0, step=0.5, format="%g",
                          help="the request rate to serve (servelab recommend --traffic)")
slo = c2.text_input("SLO", value=sweep.get("slo") or "", help="terms like ttft_p99<=300ms,tpot_p99<=50ms; another "
                    "SLO than the sweep's judges its points again from their recorded percentiles (--slo)")
chosen = pricing.pricing_select(c3)
c4, c5, c6 = st.columns(3)
headroom = c4.number_input("headroom", min_value=0.0, value=0.1, step=0.05, format="%g",
                           help="spare capacity kept for bursts and a replica being replaced, a fraction of the "
                           "traffic: copies = ceil(traffic x (1 + headroom) / capacity per copy)")
spot = c5.number_input("spot overhead", min_value=0.0, max_value=0.95, value=0.05, step=0.01, format="%g",
                       help="spot pricing: fraction of hours lost to interruptions; $/h = spot price / (1 - f)")
use_min = c6.checkbox("minimum fidelity", help="exclude setups whose greedy answers match the baseline's on fewer "
                      "than this share of the fixed prompts (--min-fidelity)")
min_fidelity = c6.number_input("at least", 0.0, 1.0, 0.95, 0.01, disabled=not use_min, label_visibility="collapsed",
                               help="share of prompts whose greedy answer equals the baseline's")
report = st.file_uploader("fidelity report (servelab fidelity --json), optional", type="json",
                          help="per-setup fidelity; without it, fidelity comes from the sweep result where it "
                          "carries one")
if report is not None:
    try:
        st.session_state[pricing.FIDELITY] = dict(json.loads(report.getvalue()).get("setups") or {})
    except (ValueError, AttributeError, TypeError):
        st.error("That file is not a fidelity report (servelab fidelity --json).")
        st.stop()
fidelity = st.session_state.get(pricing.FIDELITY) or {}
if fidelity:
    st.caption("Fidelity reports in use (this session, also on **Levers**): " + ", ".join(
        f"{n} {r.get('exact_match_rate', 0):.0%} exact" for n, r in fidelity.items()))
    if st.button("Forget the fidelity report"):
        st.session_state[pricing.FIDELITY] = {}
        st.rerun()

pricing.overrides_note(sweep)
rec = pricing.recommendation(pricing.judged(sweep, slo or None), traffic, chosen, headroom=headroom, spot_overhead=spot,
                             fidelity=fidelity, min_fidelity=min_fidelity if use_min else None)

if rec["setup"] is None:
    st.error(f"No setup serves {traffic:g} req/s within `{rec.get('slo')}` with {headroom:.0%} headroom: "
             "see why below.")
else:
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("recommended", f"{rec['setup']} x {rec['replicas']}",
              help="the cheapest setup by $/hour that serves the traffic, and its copies")
    m2.metric("$/hour", usd(rec["usd_per_hour"]), help="copies x price per hour (spot: / (1 - overhead))")
    m3.metric("$/month", usd(rec["usd_per_month"]), help="$/hour x 730 h")
    m4.metric("$/1M output tokens", usd(rec["usd_per_1m_output_tokens"]),
              help="$/hour / (traffic x output tokens per request x 3600) x 1e6, at this traffic")
    st.markdown("\n".join(f"- {line}" for line in recommend_views.reasoning(rec)))
ru = rec.get("runner_up")
if ru:
    st.markdown(f"**Runner-up**: {ru['setup']} x {ru['replicas']}: {usd(ru['usd_per_hour'])}/hour, "
                f"{usd(ru['usd_per_month'])}/month (prices as of {ru['prices_as_of']}, source: "
                f"{ru['prices_source']}).")

st.subheader("Every setup")
frame = recommend_views.candidates_frame(rec)
st.plotly_chart(recommend_views.candidates_chart(frame), key="candidates")
st.caption("$/hour of the copies each setup needs for this traffic: green recommended, blue runner-up, grey "
           "costs more. Setups that cannot serve it (or have no price) have no bar: the table says why.")
st.dataframe(frame, hide_index=True, width="stretch", column_config={
    "usd_per_hour": st.column_config.NumberColumn("$/hour", format="$%.4g",
                                                  help="$/hour of the copies that setup needs for this traffic"),
    "replicas": st.column_config.NumberColumn("copies", help="ceil(traffic x (1 + headroom) / planning capacity)"),
    "reason": st.column_config.TextColumn("why", help="why it was chosen or lost"),
})
st.download_button("setups (CSV)", frame.to_csv(index=False), f"{sweep['sweep_id']}-recommend.csv", "text/csv")
st.download_button("recommendation (JSON, as servelab recommend --json)", json.dumps(rec),
                   f"{sweep['sweep_id']}-recommend.json", "application/json")
st.caption("The command line gives the same answer: `servelab recommend " + sweep["sweep_id"]
           + f" --traffic {traffic:g} --pricing {chosen} --headroom {headroom:g} --spot-overhead {spot:g}"
           + (f" --slo '{slo}'" if slo and slo != sweep.get("slo") else "")
           + (f" --min-fidelity {min_fidelity:g}" if use_min else "")
           + "".join(f" --price-per-hour {f}" for f in pricing.flags_for(sweep)) + "`")
