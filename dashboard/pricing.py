"""What the decision pages share: the sweep picked, the pricing chosen and the session's price overrides.

Session overrides (set on the Hardware and prices page) live in `st.session_state` as
{setup or SKU name: USD per hour} and reach analysis/prices.py exactly as
`--price-per-hour NAME=USD` flags do, so a $ figure on the Frontier, Levers and Recommend
pages is the one `servelab frontier` / `servelab recommend` prints with those flags: both
build their reports with analysis/decisions.py; only the price resolution differs (the
dashboard may not import the CLI package: docs/architecture.md, "Package boundaries").
tests/test_dashboard_decisions.py holds the two to the same numbers.
"""

from __future__ import annotations

import datetime
import tomllib
from typing import Any

import streamlit as st

from analysis import decisions
from analysis.prices import PRICINGS, resolve_prices
from analysis.recommend import recommend
from dashboard import data, sweep_views
from servelab.datafiles import data_path
from servelab.errors import UserError

CATALOG = data_path("hardware", "catalog.toml")

OVERRIDES = "price_overrides"  # session_state key: {name: usd per hour}
PRICING = "pricing_choice"  # session_state key: the pricing last chosen, kept across pages
FLAG_SOURCE = "--price-per-hour flag"  # servelab/prices.py's source of a flag's price
SESSION_SOURCE = "session override (Hardware and prices page)"
PRICING_HELP = ("which catalog price a setup with a `hardware` SKU is charged: on-demand, spot (divided by "
                "1 - spot overhead for the hours interruptions take), or a reserved term. A price set for a "
                "setup (sweep spec `price_per_hour`, or an override here) is used as given.")


def overrides() -> dict[str, float]:
    """This session's price overrides, {setup or SKU: USD per hour}."""
    return dict(st.session_state.get(OVERRIDES) or {})


def set_overrides(values: dict[str, float]) -> None:
    st.session_state[OVERRIDES] = dict(values)


def pick_sweep(key: str = "sweep") -> dict[str, Any]:
    """A sweep selector (the `sweep` query parameter picks it, as on the Sweeps page) -> its result."""
    path = data.store_path()
    rows = data.guarded(data.sweeps, path)
    if not rows:
        st.info("No sweeps in this store yet. Start one with `servelab sweep data/sweeps/levers-tiny.yaml`.")
        st.stop()
    by_id = {r["sweep_id"]: r for r in rows}
    ids = list(by_id)
    wanted = st.query_params.get("sweep")
    if wanted is not None and wanted not in by_id:
        st.warning(f"No sweep `{wanted}` in `{path}`; showing the newest sweep instead.")
    sweep_id = st.selectbox("Sweep", ids, index=ids.index(wanted) if wanted in by_id else 0, key=key,
                            format_func=lambda i: sweep_views.sweep_option(by_id[i]))
    st.query_params["sweep"] = sweep_id
    row = by_id[sweep_id]
    return data.guarded(data.sweep_result, path, sweep_id, (row.get("status"), row.get("points")))


def pricing_select(container=st) -> str:
    """The pricing selector; its choice is remembered for the other pages of this session."""
    names = list(PRICINGS)
    current = st.session_state.get(PRICING, "on-demand")
    choice = container.selectbox("pricing", names, index=names.index(current) if current in names else 0,
                                 help=PRICING_HELP)
    st.session_state[PRICING] = choice
    return choice


def flags_for(sweep: dict[str, Any]) -> list[str]:
    """The session overrides that name a setup of this sweep or a catalog SKU, as price flags
    (an override for another sweep's setup is not an error here, unlike on the command line)."""
    known = {s.get("name") for s in sweep.get("setups") or []} | set(load_catalog()["skus"])
    return [f"{name}={usd!r}" for name, usd in sorted(overrides().items()) if name in known]


def relabel(obj: Any) -> Any:
    """A price's source "--price-per-hour flag" named as the user set it here (a session
    override), wherever it appears in a report; every figure stays as computed."""
    if isinstance(obj, dict):
        return {k: relabel(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [relabel(v) for v in obj]
    return SESSION_SOURCE if obj == FLAG_SOURCE else obj


def _shown(fn, *args, **kwargs):
    """Calls a decision function; a user mistake is one error line on the page, as on the CLI."""
    try:
        return relabel(fn(*args, **kwargs))
    except (UserError, ValueError) as exc:
        st.error(str(exc))
        st.stop()


@st.cache_data(ttl=60, show_spinner=False)
def load_catalog() -> dict[str, Any]:
    """The price catalog as servelab/prices.py reads it (no overrides file: overrides live in the session)."""
    with open(CATALOG, "rb") as f:
        data = tomllib.load(f)
    data.setdefault("skus", {})
    data.setdefault("setups", {})
    return data


def prices_for(sweep: dict[str, Any], pricing: str) -> dict[str, dict[str, Any]]:
    """{setup: price} under the pricing and this session's overrides (analysis.prices.resolve_prices)."""
    return _shown(resolve_prices, sweep, load_catalog(), pricing, flags_for(sweep), datetime.date.today().isoformat())


def _frontier_report(sweep: dict[str, Any], pricing: str, latency: str = "ttft_p99", baseline: str | None = None,
                     slo_only: bool = False, spot_overhead: float = 0.05) -> dict[str, Any]:
    """`servelab frontier --json`'s object over the session's prices (no energy figures)."""
    prices = resolve_prices(sweep, load_catalog(), pricing, flags_for(sweep), datetime.date.today().isoformat())
    try:
        return decisions.frontier_report(sweep, prices, latency, baseline, slo_only, spot_overhead)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def frontier(sweep: dict[str, Any], pricing: str, **options: Any) -> dict[str, Any]:
    """`servelab frontier --json`'s object under this session's overrides."""
    return _shown(_frontier_report, sweep, pricing, **options)


def _recommend(sweep: dict[str, Any], traffic: float, pricing: str, **options: Any) -> dict[str, Any]:
    prices = resolve_prices(sweep, load_catalog(), pricing, flags_for(sweep), datetime.date.today().isoformat())
    try:
        return recommend(sweep, traffic, prices, **options)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def recommendation(sweep: dict[str, Any], traffic: float, pricing: str, **options: Any) -> dict[str, Any]:
    """`servelab recommend --json`'s object under this session's overrides."""
    return _shown(_recommend, sweep, traffic, pricing, **options)


def judged(sweep: dict[str, Any], slo: str | None) -> dict[str, Any]:
    """The sweep as measured, or judged again against another SLO, as `servelab recommend --slo` does."""
    try:
        return decisions.judged(sweep, slo)
    except ValueError as exc:
        st.error(str(exc))
        st.stop()
        raise  # st.stop() raises; this line only tells the type checker


def overrides_note(sweep: dict[str, Any]) -> None:
    """One line saying which session overrides are in force, so no $ figure surprises."""
    flags = flags_for(sweep)
    if flags:
        st.caption("Session price overrides in force (set on **Hardware and prices**): "
                   + ", ".join(f"`{f}`" for f in flags) + ". The command line gives the same figures with "
                   + " ".join(f"`--price-per-hour {f}`" for f in flags) + ".")


FIDELITY = "fidelity_reports"  # session_state key: {setup: report} from an uploaded `servelab fidelity --json`


def with_fidelity(sweep: dict[str, Any]) -> dict[str, Any]:
    """The sweep with this session's fidelity reports (uploaded on the Recommend page) on its setups;
    a report the sweep result already carries is kept."""
    reports = st.session_state.get(FIDELITY) or {}
    if not reports:
        return sweep
    return {**sweep, "setups": [{**s, "fidelity": s.get("fidelity") or reports.get(s.get("name"))}
                                for s in sweep.get("setups") or []]}
