"""The servelab dashboard: `streamlit run dashboard/app.py` (or `servelab dashboard`)."""

from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent

st.set_page_config(page_title="servelab", layout="wide")
page = st.navigation(
    [
        st.Page(HERE / "pages" / "runs.py", title="Runs", default=True),
        st.Page(HERE / "pages" / "run.py", title="Run", url_path="run"),
    ]
)
page.run()
