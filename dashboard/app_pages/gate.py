"""Gate page: did the candidate regress against the baseline? `servelab gate` over stored runs.

Both sides are run sets of this store (labels or run ids); the verdicts, medians, intervals and
p-values are those `servelab gate --baseline ... --candidate ... --json` prints for the same picks.
"""

import json

import streamlit as st

from analysis.gate_metrics import DEFAULT_METRICS, parse_metrics
from dashboard import data, gate_views, run_sets
from analysis.gate_sides import SideError

st.title("Gate")
path = data.store_path()
rows = run_sets.runs_or_stop(path, "The gate compares two sets of stored runs")
by_id = {r["run_id"]: r for r in rows}
tokens = run_sets.pick_two(rows, ("baseline", "candidate"), run_sets.same_load_defaults(rows))
c1, c2, c3 = st.columns([3, 1, 1])
names = c1.multiselect("metrics", gate_views.metric_names(), default=list(DEFAULT_METRICS),
                       help="one number per repeat from its run summary, e.g. ttft_p99 = the run's TTFT p99 "
                            "(servelab gate --metrics)")
repeats = c2.number_input("repeats", 1, 100, 6, help="repeats each side needs; fewer stored runs: "
                          "inconclusive (servelab gate --repeats)")
alpha = c3.number_input("alpha", 0.0001, 0.5, 0.05, format="%.4f", help="significance level of the two-sided "
                        "Mann-Whitney U test; intervals are at 1 - 2 alpha (servelab gate --alpha)")
if not tokens["baseline"] or not tokens["candidate"] or not names:
    st.info("Pick a baseline, a candidate and at least one metric.")
    st.stop()
ids = {side: run_sets.resolve(rows, picks, path) for side, picks in tokens.items()}
with data.shared_open(path) as shared:  # one open for every run not cached yet
    summaries = {side: {i: data.guarded(data.plain_summary, path, i, data.run_stamp(by_id[i]), shared)
                        for i in run_ids} for side, run_ids in ids.items()}
    loads = {side: [(i, (data.guarded(data.run_data, path, i, data.run_stamp(by_id[i]), shared).run.get("config")
                         or {}).get("load") or {}) for i in run_ids] for side, run_ids in ids.items()}
try:
    result = gate_views.judge_stored(summaries, loads, parse_metrics(",".join(names)), int(repeats), float(alpha),
                                     {side: ",".join(t) for side, t in tokens.items()})
except SideError as exc:
    st.error(str(exc))
    st.stop()

icon = {"regressed": "❌", "improved": "🟢", "no change": "✅", "inconclusive": "⚠️"}[result["verdict"]]
st.subheader(f"{icon} gate: {result['verdict']}")
st.caption(f"exit code of `servelab gate` for these picks: {result['exit_code']} (0 no regression, 1 regression, "
           "3 inconclusive). Regressed if any metric regressed, else inconclusive if any is.")
for reason in result.get("reasons") or []:
    st.warning(reason)
frame = gate_views.verdict_frame(result)
confidence = 1 - 2 * float(alpha)
st.dataframe(frame, hide_index=True, width="stretch", column_config={
    "metric": st.column_config.TextColumn("metric", help="one number per repeat from the run summary"),
    "verdict": st.column_config.TextColumn("verdict", help="regressed / improved: p < alpha and the whole interval "
                                           "past both floors; no change: the interval within a floor; otherwise "
                                           "inconclusive"),
    "baseline": st.column_config.NumberColumn("baseline", format="%.4g", help="median of the baseline's repeats"),
    "candidate": st.column_config.NumberColumn("candidate", format="%.4g", help="median of the candidate's repeats"),
    "change": st.column_config.NumberColumn("change", format="percent",
                                            help="median(candidate) / median(baseline) - 1"),
    "ci_low": st.column_config.NumberColumn("low", format="percent", help=f"{confidence:.0%} percentile bootstrap "
                                            "interval of the change (each side resampled on its own)"),
    "ci_high": st.column_config.NumberColumn("high", format="percent", help=f"{confidence:.0%} interval, upper end"),
    "abs_change": st.column_config.NumberColumn("abs change", format="%.4g",
                                                help="median(candidate) - median(baseline), in the metric's unit"),
    "abs_ci_low": st.column_config.NumberColumn("abs low", format="%.4g", help=f"{confidence:.0%} interval of "
                                                "the absolute change, lower end"),
    "abs_ci_high": st.column_config.NumberColumn("abs high", format="%.4g", help="upper end"),
    "unit": st.column_config.TextColumn("unit", help="the metric's unit (fraction: a share of requests)"),
    "p": st.column_config.NumberColumn("p", format="%.3g", help="two-sided Mann-Whitney U p-value over the repeats"),
    "rel_floor": st.column_config.NumberColumn("rel floor", format="percent",
                                               help="the smallest relative change that matters"),
    "abs_floor": st.column_config.NumberColumn("abs floor", format="%.4g",
                                               help="the smallest absolute change that matters, in the unit"),
    "repeats": st.column_config.TextColumn("repeats", help="values measured: baseline / candidate"),
    "reason": st.column_config.TextColumn("why", width="large"),
})
st.download_button("verdicts (CSV)", frame.to_csv(index=False), "gate.csv", "text/csv")
st.download_button("result (JSON, as servelab gate --json)", json.dumps(result, default=str), "gate.json",
                   "application/json")
st.plotly_chart(gate_views.change_chart(frame, confidence), width="stretch")
st.download_button("each repeat's values (CSV)", gate_views.repeats_frame(result).to_csv(index=False),
                   "gate-repeats.csv", "text/csv")
st.caption("Dots: the change of each metric's median; bars: its interval; grey ticks: the relative floor. "
           f"The same as `servelab gate --baseline '{','.join(tokens['baseline'])}' "
           f"--candidate '{','.join(tokens['candidate'])}' --repeats {int(repeats)} --store {path}`.")
