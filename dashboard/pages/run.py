"""Run page: one run's throughput, latency percentiles, TTFT/ITL histograms, latency over time."""

import pandas as pd
import plotly.express as px
import streamlit as st

from analysis.frames import itl_ms, request_frame
from analysis.summary import summarize_run
from dashboard import data

st.title("Run")
path = data.store_path()
rows = data.guarded(data.runs, path)
if not rows:
    st.info("No runs yet.")
    st.stop()

ids = [r["run_id"] for r in rows]
wanted = st.query_params.get("run", ids[0])
run_id = st.selectbox("run", ids, index=ids.index(wanted) if wanted in ids else 0)
st.query_params["run"] = run_id

run, steps, requests = data.guarded(data.run_bundle, path, run_id)
summary = summarize_run(run, steps, requests, data.slo_of(run))

st.caption(f"{run.get('label') or ''}  ·  target `{run.get('target')}`  ·  status **{run['status']}**")
c = st.columns(5)
c[0].metric("requests", f"{summary['requests']:,}")
c[1].metric("errors", f"{summary['errors']:,}")
c[2].metric("req/s", f"{summary['req_s'] or 0:.2f}")
c[3].metric("output tok/s", f"{summary['output_tok_s'] or 0:.1f}")
att = summary.get("slo_attainment")
c[4].metric("SLO attainment", "-" if att is None else f"{att:.1%}")

METRICS = {"ttft_ms": "TTFT", "ttft_sched_ms": "TTFT from schedule", "itl_ms": "ITL",
           "tpot_ms": "TPOT", "e2e_ms": "E2E", "schedule_lag_ms": "schedule lag"}
table = pd.DataFrame(
    {name: summary[key] for key, name in METRICS.items() if summary.get(key)}
).T[["p50", "p90", "p95", "p99", "p999", "mean"]]
st.subheader("Latency percentiles (ms)")
st.dataframe(table.dropna(how="all"), width="stretch")

frame = request_frame(requests)
ok = frame[frame["status"] == "ok"]
left, right = st.columns(2)
with left:
    st.subheader("TTFT")
    if ok.empty:
        st.info("no successful requests")
    else:
        st.plotly_chart(px.histogram(ok, x="ttft_ms", nbins=60, labels={"ttft_ms": "TTFT (ms)"}),
                        width="stretch")
with right:
    st.subheader("ITL")
    gaps = itl_ms(requests)
    if len(gaps) == 0:
        st.info("no inter-token gaps (single-chunk responses)")
    else:
        st.plotly_chart(px.histogram(x=gaps, nbins=60, labels={"x": "ITL (ms)"}), width="stretch")

st.subheader("Latency over time")
if frame.empty:
    st.info("no requests recorded")
else:
    long = frame.melt(id_vars=["t_s", "status"], value_vars=["ttft_ms", "e2e_ms"],
                      var_name="metric", value_name="ms").dropna(subset=["ms"])
    st.plotly_chart(px.scatter(long, x="t_s", y="ms", color="metric", symbol="status",
                               labels={"t_s": "time since first send (s)"}), width="stretch")
