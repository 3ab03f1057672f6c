"""The dashboard's page scripts, run by `st.navigation` in dashboard/app.py.

Not named `pages/`: Streamlit treats a `pages/` folder beside the entry script as a
legacy (v1) multipage app until the entry script has run once, so a deep link such as
`/run?run=ID` into a freshly started dashboard would bypass app.py's navigation. A
package (this file) so that a wheel install ships the pages too.
"""
