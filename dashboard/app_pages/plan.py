"""Capacity plan page: replicas per interval, peak fleet and monthly $ for a traffic profile.

The page runs `servelab plan --json` itself (`python -m servelab.cli`, on the sweep result it
shows, with this session's price overrides as `--price-per-hour` flags), so its numbers are
the command's by construction; reading a trace file belongs to the load generator
(loadtest/traces.py), which the dashboard does not import. The charts are
dashboard/plan_views.py's, the ones the HTML report inlines.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import streamlit as st

from dashboard import plan_views, pricing
from dashboard.cost_views import usd
from servelab.datafiles import data_path


@st.cache_data(show_spinner="planning ...", max_entries=16)
def run_plan(sweep_json: str, args: tuple[str, ...]) -> tuple[dict | None, str, dict[str, str]]:
    """(the plan object, the error line, {file name: text}) of `servelab plan` over this sweep."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "sweep.json").write_text(sweep_json, encoding="utf-8")
        res = subprocess.run([sys.executable, "-m", "servelab.cli", "plan", "--from-json", "sweep.json", "--out", "out",
                              "--json", *args], cwd=tmp, capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            return None, (res.stderr.strip().splitlines() or ["servelab plan failed"])[-1], {}
        files = {p.name: p.read_text(encoding="utf-8") for p in Path(tmp, "out").iterdir()}
    return json.loads(res.stdout.strip().splitlines()[-1]), "", files


st.title("Capacity plan")
sweep = pricing.pick_sweep()
c1, c2 = st.columns([1, 2])
kind = c1.radio("traffic", ["constant", "trace"], horizontal=True,
                help="a constant rate, or a trace file's arrival rates and length mix (servelab plan --traffic)")
traces = sorted(str(p) for p in data_path("traces").glob("*.csv"))
if kind == "constant":
    traffic = str(c2.number_input("rate (req/s)", min_value=0.001, value=10.0, step=1.0, format="%g"))
else:
    traffic = c2.selectbox("trace file", traces, accept_new_options=True, key="plan_trace",
                           help="Azure LLM trace CSV, Mooncake JSONL or BurstGPT CSV; type another path to use it")
c3, c4, c5, c6 = st.columns(4)
chosen = pricing.pricing_select(c3)
headroom = c4.number_input("headroom", min_value=0.0, value=0.1, step=0.05, format="%g",
                           help="replicas = ceil(rate x (1 + headroom) / planning capacity)")
growth = c5.text_input("growth", value="20%/quarter", help="e.g. 20%/quarter, 5%/month; empty: none")
scale = c6.number_input("traffic scale", min_value=0.001, value=1.0, step=0.1, format="%g",
                        help="multiply the traffic's rates (a trace replayed this much faster)")
names = [s["name"] for s in sweep.get("setups") or []]
setup = st.selectbox("setup", ["(the recommended one)", *names], key="plan_setup",
                     help="default: what servelab recommend picks at the traffic's peak")

args = ["--traffic", traffic, "--pricing", chosen, "--headroom", f"{headroom:g}", "--traffic-scale", f"{scale:g}"]
args += ["--growth", growth] if growth.strip() else []
args += ["--setup", setup] if setup in names else []
args += [a for f in pricing.flags_for(sweep) for a in ("--price-per-hour", f)]
plan, error, files = run_plan(json.dumps(sweep), tuple(args))
if plan is None:
    st.error(error)
    st.stop()

m1, m2, m3, m4 = st.columns(4)
m1.metric("setup", plan["setup"], help=plan["choice"])
m2.metric("replicas at the peak", plan["replicas_peak"], help=f"peak {plan['peak_req_s']:.4g} req/s")
m3.metric("utilisation at the peak", f"{plan['utilisation_peak']:.0%}", help="peak rate / (replicas x capacity)")
m4.metric("fixed fleet, per month", usd(plan["usd_per_month"]["fixed"]),
          help=f"prices as of {plan.get('prices_as_of')}, source: {plan.get('prices_source')}")
u = plan["usd_per_month"]
st.markdown(f"Per month ({plan['pricing']}): fixed **{usd(u['fixed'])}**, autoscaled **{usd(u['autoscaled'])}**, "
            f"reserved base + peaks **{usd(u['reserved_mix'])}**; prices as of {plan.get('prices_as_of') or 'n/a'}.")
for note in plan["length_mix"]["notes"]:
    st.warning(f"Length mix: {note}")
for k, fig in enumerate(plan_views.figures(plan)):
    st.plotly_chart(fig, key=f"plan-chart-{k}")
st.markdown(files.get("plan.md", "").split("## Monthly cost", 1)[-1].join(["## Monthly cost", ""]))
b1, b2, b3 = st.columns(3)
b1.download_button("report (HTML, offline)", files.get("plan.html", ""), "plan.html", "text/html")
b2.download_button("report (Markdown)", files.get("plan.md", ""), "plan.md", "text/markdown")
b3.download_button("plan (JSON)", files.get("plan.json", ""), "plan.json", "application/json")
st.caption("The command line gives the same plan: `servelab plan " + sweep["sweep_id"] + " "
           + " ".join(a if " " not in a else repr(a) for a in args) + " --out plan/`")
