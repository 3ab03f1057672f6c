"""Choosing a run set on a page: labels and run ids, resolved as `servelab gate` resolves a side.

A side is a list of tokens, each a label (every run with that label) or a run id, and the
tokens are resolved by analysis/gate_sides.ids_named, so `--baseline "fp32,r2026..."` on the
CLI and the same picks here name the same runs. The picks live in the page's query string
(`?baseline=...&candidate=...`, comma-separated), so a comparison can be linked.
"""

from __future__ import annotations

import streamlit as st

from analysis.gate_sides import SideError, ids_named
from dashboard import data, views

SIDE_HELP = ("a label picks every run with that label (oldest first), a run id one run; the same names "
             "`servelab gate --baseline/--candidate` takes")


def labels(rows: list[dict]) -> list[str]:
    """Distinct labels, the newest run's label first."""
    return list(dict.fromkeys(r["label"] for r in rows if r.get("label")))


def defaults(rows: list[dict]) -> tuple[list[str], list[str]]:
    """Baseline and candidate when nothing was picked: the two newest labels (older one as the
    baseline), else the two newest runs."""
    named = labels(rows)
    if len(named) >= 2:
        return [named[1]], [named[0]]
    ids = [r["run_id"] for r in rows]
    return ids[1:2], ids[:1]


def _load(row: dict) -> tuple:
    return row.get("mode"), row.get("users"), row.get("rate"), row.get("arrival")


def same_load_defaults(rows: list[dict]) -> tuple[list[str], list[str]]:
    """Defaults for the gate, whose sides must have run one load: `defaults` when the two
    picks ran the same load (as the listing tells), else the newest two runs that did
    (e.g. two setups of a sweep at one rate), else `defaults` (the page then says why not)."""
    base, cand = defaults(rows)

    def loads(token: str) -> set:
        return {_load(r) for r in rows if token in (r["run_id"], r.get("label"))}

    if base and cand and len(loads(base[0])) == 1 and loads(base[0]) == loads(cand[0]):
        return base, cand
    for i, newer in enumerate(rows):
        for older in rows[i + 1:]:
            if _load(older) == _load(newer):
                return [older["run_id"]], [newer["run_id"]]
    return base, cand


def pick(side: str, rows: list[dict], default: list[str], container=st) -> list[str]:
    """A multiselect of labels and run ids for one side; returns the tokens picked."""
    by_id = {r["run_id"]: r for r in rows}
    named = labels(rows)
    counts = {n: sum(r.get("label") == n for r in rows) for n in named}
    options = named + list(by_id)
    given = st.query_params.get(side)
    wanted = [t for t in (given.split(",") if given else default) if t in options]

    def show(token: str) -> str:
        if token in counts:
            return f"label {token} ({counts[token]} run{'s' * (counts[token] != 1)})"
        return views.run_option(by_id[token])

    tokens = container.multiselect(side, options, default=wanted, format_func=show, key=f"side-{side}",
                                   help=SIDE_HELP)
    st.query_params[side] = ",".join(tokens)
    return tokens


def runs_or_stop(path: str, needs: str) -> list[dict]:
    """The store's runs; with fewer than two, a line saying what the page `needs` and how to
    make runs, and the page stops."""
    rows = data.guarded(data.runs, path)
    if len(rows) < 2:
        st.info(f"{needs}; this store has {len(rows)}. {data.START_HINT}")
        st.stop()
    return rows


def pick_two(rows: list[dict], sides: tuple[str, str], defaults: tuple[list[str], list[str]]) -> dict[str, list[str]]:
    """Two sides' pickers side by side: {side: tokens}."""
    return {side: pick(side, rows, default, column)
            for side, default, column in zip(sides, defaults, st.columns(2))}


def resolve(rows: list[dict], tokens: list[str], path: str) -> list[str]:
    """The run ids the tokens name (ids_named); a bad pick is a page error, not a traceback."""
    try:
        return ids_named(rows, ",".join(tokens), path)
    except SideError as exc:
        st.error(str(exc))
        st.stop()
