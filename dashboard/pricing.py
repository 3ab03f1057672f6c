"""What the decision pages share: the sweep picked, the pricing chosen and the session's price overrides.

Session overrides (set on the Hardware and prices page) live in `st.session_state` as
{setup or SKU name: USD per hour} and reach servelab/prices.py exactly as
`--price-per-hour NAME=USD` flags do, so a $ figure on the Frontier, Levers and Recommend
pages is the one `servelab frontier` / `servelab recommend` prints with those flags.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import data, sweep_views
from servelab.decisions import frontier_report, recommend_report
from servelab.errors import UserError
from servelab.prices import PRICINGS, load_catalog, sweep_prices

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
    except UserError as exc:
        st.error(str(exc))
        st.stop()


def prices_for(sweep: dict[str, Any], pricing: str) -> dict[str, dict[str, Any]]:
    """{setup: price} under the pricing and this session's overrides (servelab.prices.sweep_prices)."""
    return _shown(sweep_prices, sweep, pricing, None, flags_for(sweep))


def frontier(sweep: dict[str, Any], pricing: str, **options: Any) -> dict[str, Any]:
    """`servelab frontier --json`'s object under this session's overrides (servelab/decisions.py)."""
    return _shown(frontier_report, sweep, pricing, None, flags_for(sweep), **options)


def recommendation(sweep: dict[str, Any], traffic: float, pricing: str, **options: Any) -> dict[str, Any]:
    """`servelab recommend --json`'s object under this session's overrides (servelab/decisions.py)."""
    return _shown(lambda: recommend_report(sweep, traffic, pricing, None, flags_for(sweep), **options)[0])


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
