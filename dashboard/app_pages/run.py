"""Run page: one run's throughput, SLO, latency percentiles, TTFT/ITL histograms, latency over time."""

import streamlit as st

from analysis.frames import itl_ms, request_frame
from analysis.report import run_report
from analysis.table import request_table
from dashboard import data, hardware_views, views

st.title("Run")
path = data.store_path()
rows = data.guarded(data.runs, path)
if not rows:
    st.info(f"No runs in this store yet. {data.START_HINT}")
    st.stop()

by_id = {r["run_id"]: r for r in rows}
ids = list(by_id)
wanted = st.query_params.get("run")
if wanted is not None and wanted not in by_id:
    st.warning(f"No run `{wanted}` in `{path}`; showing the newest run instead.")
run_id = st.selectbox("Run", ids, index=ids.index(wanted) if wanted in by_id else 0,
                      format_func=lambda i: views.run_option(by_id[i]))
st.query_params["run"] = run_id

stamp = data.run_stamp(by_id[run_id])
stored = data.guarded(data.run_data, path, run_id, stamp)
run, requests, samples, operators = stored.run, stored.requests, stored.samples, stored.operators
summary = run_report(stored)  # the run's own SLO; the same figures as `servelab summary`
load = (run.get("config") or {}).get("load") or {}

load_text = views.load_text(load.get("mode"), load.get("users"), load.get("rate"))
st.caption("  ·  ".join(p for p in (
    run.get("label"),
    load_text if load_text != run.get("label") else None,
    f"target `{run.get('target') or '?'}`",
    f"status **{run['status']}**",
    f"started {views.when(run.get('started_at'))} UTC" if run.get("started_at") else None,
) if p))
if run["status"] == "running":
    st.info("This run is still running: its requests appear here when its step has been ingested.")
elif run.get("error"):
    (st.error if run["status"] == "failed" else st.warning)(f"Run {run['status']}: {run['error']}")
check = run.get("self_check") or {}
if check and not check.get("passed"):
    st.warning("The load generator failed its own self-check: " + "; ".join(check.get("reasons") or [])
               + ". Its own delays may be in this run's figures (see **Load generator self-check** below).")

c = st.columns(6)
c[0].metric("requests", f"{summary['requests']:,}",
            help="every request recorded, warm-up and drain included")
c[1].metric("measured", f"{summary['measured_requests']:,}",
            help="requests offered inside the steady window (warm-up and drain excluded): "
                 "latency, errors and SLO figures are over these")
err_rate = summary.get("error_rate")
c[2].metric("errors", f"{summary['errors']:,}",
            delta=None if not summary["errors"] else f"{err_rate:.1%} of measured", delta_color="inverse",
            delta_arrow="off",
            help="measured requests that did not finish ok (any status other than ok)")
c[3].metric("req/s", views.number(summary.get("req_s")),
            help="ok requests completed per second of steady window")
c[4].metric("output tok/s", views.number(summary.get("output_tok_s"), "{:.1f}"),
            help="output tokens of completed requests per second of steady window")
att = summary.get("slo_attainment")
c[5].metric("SLO attainment", views.number(att, "{:.1%}"),
            help="share of measured requests meeting every SLO term (errors count as misses); "
                 "– when the run has no SLO")
window = summary.get("window_s")
rates = [f"steady window {views.number(window, '{:.1f}')} s"]
if summary.get("requested_rate") is not None:
    sent = views.number(summary.get("achieved_rate"))
    rates.append(f"requested {summary['requested_rate']:g} req/s, sent {sent} req/s")
if summary.get("goodput_req_s") is not None:
    rates.append(f"goodput {summary['goodput_req_s']:.2f} req/s")
st.caption("  ·  ".join(rates))

if summary.get("slo_terms"):
    st.subheader("SLO")
    verdict = {True: "met", False: "missed", None: "not judged"}[summary.get("slo_met")]
    st.caption(f"{', '.join(summary['slo'])}: **{verdict}**")
    st.dataframe(views.slo_table(summary), hide_index=True, width="content")

st.subheader("Latency percentiles (ms)")
latency = views.latency_table(summary)
if latency.empty:
    st.info("No latency figures: no request finished ok inside the steady window.")
else:
    st.dataframe(latency, hide_index=True, width="stretch",
                 column_config={"metric": st.column_config.TextColumn("metric", width="medium", help=views.METRIC_HELP),
                                **{k: st.column_config.NumberColumn(k, format="%.2f", help=views.PCT_HELP[k])
                                   for k in views.PCT_COLUMNS.values()}})
    st.caption("Over the measured requests (ok ones only, except schedule lag). TTFT from schedule "
               "counts from when the request was meant to be sent, so client-side queueing shows.")

if summary.get("server"):
    st.subheader("Server's view")
    st.dataframe(views.server_rows(summary["server"]), hide_index=True, width="content")
    st.caption("What the server said about the same measured requests: each lever's outcome "
               "(cache, tier, refusals, degraded) and its own queue/prefill/decode times, over "
               "the requests that ran a generation.")

setup = {k: v for k, v in (summary.get("setup") or {}).items() if v is not None}
engine_rows = summary.get("engine_metrics") or []
if engine_rows or setup.get("engine") not in (None, "builtin"):
    st.subheader("Engine")
    st.caption("  ·  ".join(f"{k} **{v}**" for k, v in setup.items()))
    if engine_rows:
        key = sorted({r["name"] for r in engine_rows if r.get("key") and r["kind"] == "gauge"})
        if key:
            st.plotly_chart(hardware_views.engine_over_time(stored.engine_samples, key), width="stretch")
        st.dataframe(hardware_views.engine_table(engine_rows), hide_index=True, width="stretch")
        st.caption("The engine's own Prometheus /metrics, scraped once a second: gauges by mean, max and "
                   "last value, counters by how much they grew over the run.")
    else:
        st.caption("No engine metrics: the target has no Prometheus /metrics.")

if len(summary.get("steps") or []) > 1:
    st.subheader("Steps")
    st.dataframe(views.steps_table(summary), hide_index=True, width="stretch",
                 column_config={"SLO attainment": st.column_config.NumberColumn(format="percent")})

table = request_table(requests)  # built once for the frame and the gaps (the costly part on a large run)
frame = request_frame(requests, table)
ok = frame[frame["status"] == "ok"]
left, right = st.columns(2)
with left:
    st.subheader("TTFT")
    if ok["ttft_ms"].notna().any():
        ttft = summary.get("ttft_ms") or {}
        st.plotly_chart(views.histogram(ok["ttft_ms"], "TTFT (ms)", ttft.get("p50"), ttft.get("p99")),
                        width="stretch")
        st.download_button("TTFT per request (CSV)", ok[["req_id", "t_s", "ttft_ms"]].to_csv(index=False),
                           f"{run_id}-ttft.csv", "text/csv", help="TTFT = first content chunk - send, per ok request")
    else:
        st.info("No successful requests.")
with right:
    st.subheader("ITL")
    gaps = itl_ms(requests, table)
    if len(gaps) == 0:
        st.info("No inter-token gaps (no successful request streamed more than one chunk).")
    else:
        itl = summary.get("itl_ms") or {}
        st.plotly_chart(views.histogram(gaps, "gap between output chunks (ms)", itl.get("p50"), itl.get("p99")),
                        width="stretch")
        st.download_button("ITL gaps (CSV)", views.values_csv(gaps, "itl_ms"), f"{run_id}-itl.csv", "text/csv",
                           help="ITL = every gap between consecutive content chunks of the ok requests")
st.caption("Histograms: every ok request, warm-up included; dashed lines: p50 and p99 of the measured ones.")

st.subheader("Latency over time")
if frame.empty:
    st.info("No requests recorded.")
else:
    first_send = float(requests["t_send_ns"].dropna().min())
    st.plotly_chart(views.latency_over_time(frame, views.windows_s(summary, requests),
                                            hardware_views.profiler_spans(operators, first_send)),
                    width="stretch")
    st.download_button("per-request metrics (CSV)", frame.to_csv(index=False), f"{run_id}-requests.csv", "text/csv",
                       help="every request: status, send time (s since the first), TTFT, TTFT from schedule, "
                            "schedule lag, E2E (last byte - send), TPOT")

errors = views.errors_table(requests)
if not errors.empty:
    with st.expander(f"Failed requests ({int(errors['requests'].sum())}, warm-up included)"):
        st.dataframe(errors, hide_index=True, width="stretch")

if check:
    st.subheader("Load generator self-check")
    st.caption(f"**{'passed' if check.get('passed') else 'failed'}**: could the client keep up with what it "
               "was asked to do? A figure past its limit fails the run; the others are reported.")
    st.dataframe(views.self_check_table(check), hide_index=True, width="content")

st.subheader("Hardware")
hw = summary.get("hardware")
if not hw:
    st.info("No hardware samples in this run (profilers off, or a run from before they existed).")
else:
    if "simulated" in (hw.get("sample_source") or ""):
        st.warning("GPU figures come from the SIMULATED device (no NVIDIA GPU where this ran): "
                   "they show the pipeline, not real hardware.", icon="🧪")
    figures = hardware_views.tiles(hw) + hardware_views.cpu_tiles(hw)
    for i in range(0, len(figures), 6):
        cols = st.columns(6)
        for col, (label, value) in zip(cols, figures[i:i + 6]):
            col.metric(label, value)
    if not frame.empty:
        t0 = float(requests["t_send_ns"].dropna().min())
        spans = hardware_views.profiler_spans(operators, t0)
        st.plotly_chart(hardware_views.over_time(frame, samples, t0, spans), width="stretch")
        st.download_button("hardware samples (CSV)", samples.to_csv(index=False), f"{run_id}-samples.csv",
                           "text/csv", help="every sample the profilers took: power_w, gpu_util_pct, cpu_pct, ...")
        st.caption("Over the steady window and outside it; host CPU per process is % of one core."
                   + (" Shaded: the PyTorch profiler window, whose requests ran under the profiler"
                      " (slower)." if spans else ""))
ops = hardware_views.operators_table(operators)
if not ops.empty:
    st.subheader("Top operators (PyTorch profiler window)")
    st.dataframe(ops, hide_index=True, width="stretch")
