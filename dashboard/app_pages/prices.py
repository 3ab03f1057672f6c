"""Hardware and prices page: the price catalog with each price's date and source, and this
session's price overrides (a $/hour per setup or SKU) that every $ figure on the Frontier,
Levers and Recommend pages uses, as `--price-per-hour NAME=USD` does on the command line."""

from pathlib import Path

import streamlit as st

from analysis.prices import describe
from dashboard import data, pricing, recommend_views

st.title("Hardware and prices")
catalog = pricing.load_catalog()
frame = recommend_views.catalog_frame(catalog)
st.caption(f"The catalog: `{pricing.CATALOG.relative_to(pricing.CATALOG.parents[2])}` (read only). Each price carries the page it "
           "was read from and the date it was read; approximate ones are marked.")
st.dataframe(frame, hide_index=True, width="stretch", column_config={
    "usd_per_hour": st.column_config.NumberColumn("$/hour", format="$%.4g",
                                                  help="list price of one instance per hour under that pricing"),
    "read_on": st.column_config.TextColumn("as of", help="the date the price was read from its source"),
    "source": st.column_config.LinkColumn("source", display_text=r"https?://(?:www\.)?([^/]+)/.*",
                                          help="the page the price was read from (its site shown; hover for the "
                                          "page)"),
    "note": st.column_config.TextColumn("note", width="large", help="what the figure is, and its caveats"),
    "approx": st.column_config.CheckboxColumn("approx", help="not confirmed on the provider's own list-price page"),
    "count": st.column_config.NumberColumn("accelerators", help="accelerators per instance"),
})
st.download_button("catalog (CSV)", frame.to_csv(index=False), "price-catalog.csv", "text/csv")

st.subheader("Price overrides for this session")
st.caption("A price set here wins over the catalog and the sweep file for every $ figure on every page, until "
           "this browser session ends. Name a setup (that setup only) or a SKU (every setup on that hardware).")
rows = data.guarded(data.sweeps, data.store_path()) if Path(data.store_path()).exists() else []
setups = sorted({name for r in rows for name in r.get("setups") or []})
names = setups + sorted(set(catalog["skus"]) - set(setups))
current = pricing.overrides()
with st.form("override", clear_on_submit=False, border=True):
    left, right = st.columns([2, 1])
    name = left.selectbox("setup or SKU", names, help="setups of the sweeps in this store, then catalog SKUs")
    price = right.number_input("$/hour", min_value=0.0, value=1.0, step=0.05, format="%g",
                               help="used as given: no spot overhead is added to a set price")
    if st.form_submit_button("Set price") and name:
        current[name] = float(price)
        pricing.set_overrides(current)
if current:
    st.dataframe([{"name": n, "usd_per_hour": u, "flag": f"--price-per-hour {n}={u!r}"} for n, u in current.items()],
                 hide_index=True, width="stretch", column_config={
                     "usd_per_hour": st.column_config.NumberColumn("$/hour", format="$%.4g",
                                                                   help="the override's price per hour"),
                     "flag": st.column_config.TextColumn("command line", help="the same price on the CLI")})
    drop = st.multiselect("remove", list(current), help="overrides to drop")
    if st.button("Remove", disabled=not drop):
        pricing.set_overrides({n: u for n, u in current.items() if n not in drop})
        st.rerun()
else:
    st.info("No overrides: the catalog and the sweep files' `price_per_hour` set every price.")

if rows:
    st.subheader("Prices in effect")
    left, right = st.columns([3, 1])
    with left:
        sweep = pricing.pick_sweep(key="prices-sweep")
    chosen = pricing.pricing_select(right)
    effect = [{"setup": n, "usd_per_hour": p.get("usd_per_hour"), "pricing": p.get("pricing"),
               "sku": p.get("sku"), "as of / source": describe(p)} for n, p in pricing.prices_for(sweep, chosen).items()]
    st.dataframe(effect, hide_index=True, width="stretch", column_config={
        "usd_per_hour": st.column_config.NumberColumn("$/hour", format="$%.4g", help="one copy's list price per hour "
                                                      "(before any spot overhead)"),
        "as of / source": st.column_config.TextColumn("as of / source", help="where the price came from and when")})
