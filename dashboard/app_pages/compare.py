"""Compare page: two runs or two run sets side by side: ECDFs of TTFT, ITL and E2E, percentile
deltas with 95% intervals (analysis/compare.py), what changed in the config, hardware side by side."""

import streamlit as st

from analysis import compare
from dashboard import compare_views, data, run_sets

st.title("Compare")
path = data.store_path()
rows = run_sets.runs_or_stop(path, "Comparing needs two runs")
by_id = {r["run_id"]: r for r in rows}
tokens = run_sets.pick_two(rows, ("A", "B"), run_sets.defaults(rows))
if not tokens["A"] or not tokens["B"]:
    st.info("Pick a run, a label or several runs on each side.")
    st.stop()
ids = {side: run_sets.resolve(rows, picks, path) for side, picks in tokens.items()}
names = {side: ", ".join(picks) for side, picks in tokens.items()}
stamps = {i: data.run_stamp(by_id[i]) for side in ids.values() for i in side}
with data.shared_open(path) as shared:  # one open for every run not cached yet
    summaries = {side: [data.guarded(data.plain_summary, path, i, stamps[i], shared) for i in run_ids]
                 for side, run_ids in ids.items()}
    values = {side: [data.guarded(data.latencies, path, i, stamps[i], shared) for i in run_ids]
              for side, run_ids in ids.items()}
    configs = {side: [data.guarded(data.run_data, path, i, stamps[i], shared).run for i in run_ids]
               for side, run_ids in ids.items()}
st.caption(f"A: {len(ids['A'])} run(s) · B: {len(ids['B'])} run(s). Over each run's measured requests (ok ones "
           "inside the steady window), as its summary counts them.")

st.subheader("Throughput")
throughput = compare_views.throughput_frame(summaries)
st.dataframe(throughput, hide_index=True, width="stretch", column_config={
    "requests": st.column_config.NumberColumn("measured", help="requests offered inside the steady window"),
    "req_s": st.column_config.NumberColumn("req/s", format="%.2f", help="ok requests completed per second of "
                                           "steady window"),
    "output_tok_s": st.column_config.NumberColumn("output tok/s", format="%.1f", help="output tokens of completed "
                                                  "requests per second of steady window"),
    "error_rate": st.column_config.NumberColumn("errors", format="percent", help="measured requests that did not "
                                                "finish ok"),
})
st.download_button("throughput (CSV)", throughput.to_csv(index=False), "compare-throughput.csv", "text/csv")

st.subheader("Distributions")
per_metric = {}
for col, (metric, title) in zip(st.columns(3), compare.METRICS.items()):
    runs_a = [v[metric] for v in values["A"]]
    runs_b = [v[metric] for v in values["B"]]
    per_metric[metric] = compare.deltas(runs_a, runs_b)
    with col:
        st.markdown(f"**{title}**", help=compare_views.DEFINITIONS[metric])
        pooled = {"A": compare.pool(runs_a), "B": compare.pool(runs_b)}
        if not all(v.size for v in pooled.values()):
            st.info(f"No {title} values on one side.")
            continue
        frame = compare_views.ecdf_frame(pooled, metric)
        st.plotly_chart(compare_views.ecdf_chart(frame, metric, names), width="stretch", key=f"ecdf-{metric}")
        st.download_button(f"{title} ECDF (CSV)", frame.to_csv(index=False), f"compare-ecdf-{metric}.csv",
                           "text/csv", key=f"csv-{metric}")
st.caption("ECDF: the fraction of values at or below x; a curve to the left is faster. Hover for the exact "
           "fraction.")

st.subheader("Percentile deltas (B - A)")
deltas = compare_views.deltas_frame(per_metric)
st.dataframe(deltas, hide_index=True, width="stretch", column_config={
    "a_ms": st.column_config.NumberColumn("A (ms)", format="%.2f", help="A's percentile (over runs: median of "
                                          "each run's own)"),
    "b_ms": st.column_config.NumberColumn("B (ms)", format="%.2f", help="B's percentile"),
    "delta_ms": st.column_config.NumberColumn("B - A (ms)", format="%+.2f"),
    "delta_low_ms": st.column_config.NumberColumn("low", format="%+.2f", help="95% interval of B - A, lower end"),
    "delta_high_ms": st.column_config.NumberColumn("high", format="%+.2f", help="95% interval of B - A, upper end"),
    "change": st.column_config.NumberColumn("change", format="percent", help="B / A - 1"),
    "change_low": st.column_config.NumberColumn("low %", format="percent", help="95% interval of B / A - 1"),
    "change_high": st.column_config.NumberColumn("high %", format="percent", help="95% interval of B / A - 1"),
    "method": st.column_config.TextColumn("interval", help="one run on a side: percentile bootstrap over its "
                                          "requests; two or more on both: the gate's bootstrap over runs"),
})
st.download_button("deltas (CSV)", deltas.to_csv(index=False), "compare-deltas.csv", "text/csv")

st.subheader("What changed")
diff = compare.config_diff([r.get("config") or {} for r in configs["A"]], [r.get("config") or {} for r in configs["B"]])
if not diff:
    st.info("The stored configs are the same on both sides.")
else:
    st.dataframe(diff, hide_index=True, width="stretch", column_config={
        "setting": st.column_config.TextColumn("setting", help="the resolved config stored with each run"),
        "A": st.column_config.TextColumn("A", help="a side whose runs differ shows each value, joined by |"),
    })

st.subheader("Hardware")
hardware = compare_views.hardware_frame(summaries, {s: [r.get("host") for r in runs] for s, runs in configs.items()})
st.dataframe(hardware, hide_index=True, width="stretch", column_config={
    "figure": st.column_config.TextColumn("figure", help="the host each run ran on, and its GPU/CPU figures "
                                          "over the steady window (profilers on)")})
