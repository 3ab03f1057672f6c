"""Prices: the hardware catalog (data/hardware/catalog.toml), user overrides, a price per setup.

The catalog is read, never written. Overrides come from a TOML file of the same shape
(`--prices FILE`: `[skus.NAME.on_demand] usd_per_hour = ...` or `[setups.NAME] usd_per_hour
= ...`) and from `--price-per-hour NAME=USD` flags (NAME a setup or a SKU). Every price
handed on is a dict with `usd_per_hour`, `pricing`, `source` and `as_of`, so the date and
the source travel with every $ figure made from it (analysis/cost.py).

A setup's price, first found wins: a flag naming the setup; a `[setups.NAME]` entry of the
prices file; the setup's `price_per_hour` from the sweep spec; a flag naming its
`hardware` SKU; the SKU's catalog entry (with the prices file's changes) under the
chosen pricing. A user-set figure is used as given (`pricing: "user-set"`, no spot
overhead added).
"""

from __future__ import annotations

import datetime
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analysis import prices as pure
from analysis.prices import PRICINGS, describe, merge, setup_price
from servelab.errors import UserError

__all__ = ["CATALOG", "PRICINGS", "check_pricing", "describe", "load_catalog", "parse_price_flags", "setup_price",
           "sweep_prices"]

CATALOG = Path(__file__).resolve().parents[1] / "data" / "hardware" / "catalog.toml"


def _read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"prices file {path} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"prices file {path} is not valid TOML: {exc}") from None


def load_catalog(overrides: str | Path | None = None, path: str | Path = CATALOG) -> dict[str, Any]:
    """The catalog as a dict (`skus`, `setups`), with an overrides file merged over it."""
    data = _read_toml(path)
    if overrides:
        data = merge(data, _read_toml(overrides))
    data.setdefault("skus", {})
    data.setdefault("setups", {})
    return data


def sweep_prices(sweep: Mapping[str, Any], pricing: str = "on-demand", overrides: str | None = None,
                 flags: Sequence[str] | None = None, today: str | None = None) -> dict[str, dict[str, Any]]:
    """{setup name: price} for every setup of a sweep result."""
    check_pricing(pricing)
    catalog = load_catalog(overrides)
    try:
        return pure.resolve_prices(sweep, catalog, pricing, flags, today or datetime.date.today().isoformat())
    except ValueError as exc:
        raise UserError(str(exc)) from None


def parse_price_flags(values: Sequence[str] | None) -> dict[str, float]:
    """`["small=0.4", "local-cpu=0.1"]` -> {"small": 0.4, "local-cpu": 0.1}; a bad one is a UserError."""
    try:
        return pure.parse_price_flags(values)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def check_pricing(pricing: str) -> str:
    try:
        return pure.check_pricing(pricing)
    except ValueError as exc:
        raise UserError(str(exc)) from None
