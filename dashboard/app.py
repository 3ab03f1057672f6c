"""The servelab dashboard: `streamlit run dashboard/app.py` (or `servelab dashboard`).

Pages live in dashboard/app_pages/ (see its __init__ for why not `pages/`); they read the
store through dashboard/data.py only.
"""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "app_pages"

st.set_page_config(page_title="servelab", layout="wide")
page = st.navigation(
    [
        st.Page(PAGES / "runs.py", title="Runs", url_path="runs", default=True),
        st.Page(PAGES / "run.py", title="Run", url_path="run"),
        st.Page(PAGES / "sweeps.py", title="Sweeps", url_path="sweeps"),
        st.Page(PAGES / "frontier.py", title="Frontier", url_path="frontier"),
        st.Page(PAGES / "levers.py", title="Levers", url_path="levers"),
        st.Page(PAGES / "recommend.py", title="Recommend", url_path="recommend"),
        st.Page(PAGES / "prices.py", title="Hardware and prices", url_path="prices"),
        st.Page(PAGES / "compare.py", title="Compare", url_path="compare"),
        st.Page(PAGES / "gate.py", title="Gate", url_path="gate"),
        st.Page(PAGES / "live.py", title="Live", url_path="live"),
        st.Page(PAGES / "plan.py", title="Capacity plan", url_path="plan"),
    ]
)
page.run()
