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

from servelab.errors import UserError

CATALOG = Path(__file__).resolve().parents[1] / "data" / "hardware" / "catalog.toml"
PRICINGS = {"on-demand": "on_demand", "spot": "spot", "reserved-1y": "reserved_1y", "reserved-3y": "reserved_3y"}


def _read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"prices file {path} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"prices file {path} is not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of base with extra's tables merged in, key by key (the inputs stay as they were)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def load_catalog(overrides: str | Path | None = None, path: str | Path = CATALOG) -> dict[str, Any]:
    """The catalog as a dict (`skus`, `setups`), with an overrides file merged over it."""
    data = _read_toml(path)
    if overrides:
        data = _merge(data, _read_toml(overrides))
    data.setdefault("skus", {})
    data.setdefault("setups", {})
    return data


def parse_price_flags(values: Sequence[str] | None) -> dict[str, float]:
    """`["small=0.4", "local-cpu=0.1"]` -> {"small": 0.4, "local-cpu": 0.1}."""
    out = {}
    for text in values or []:
        name, sep, num = text.partition("=")
        try:
            usd = float(num) if sep and name.strip() else None
        except ValueError:
            usd = None
        if usd is None or usd < 0:
            raise UserError(f"bad --price-per-hour {text!r}: expected NAME=USD (a setup or a SKU), e.g. small=0.40")
        out[name.strip()] = usd
    return out


def check_pricing(pricing: str) -> str:
    if pricing not in PRICINGS:
        raise UserError(f"bad --pricing {pricing!r}: use one of {', '.join(PRICINGS)}")
    return pricing


def _user_price(usd: float, source: str, as_of: str, sku: str | None = None) -> dict[str, Any]:
    return {"usd_per_hour": usd, "pricing": "user-set", "source": source, "as_of": as_of, "sku": sku,
            "approx": False, "note": None}


def _catalog_price(catalog: Mapping[str, Any], sku: str, pricing: str) -> dict[str, Any]:
    entry = catalog["skus"].get(sku)
    if entry is None:
        return {"usd_per_hour": None, "missing": f"hardware {sku!r} is not in the price catalog "
                                                 f"({CATALOG.name}): pass --price-per-hour {sku}=USD"}
    p = entry.get(PRICINGS[pricing])
    if not p or p.get("usd_per_hour") is None:
        return {"usd_per_hour": None, "missing": f"no {pricing} price for {sku} in the catalog: pass "
                                                 f"--price-per-hour {sku}=USD or another --pricing"}
    return {"usd_per_hour": float(p["usd_per_hour"]), "pricing": pricing, "source": p.get("source"),
            "as_of": str(p.get("read_on")) if p.get("read_on") else None, "sku": sku,
            "approx": bool(p.get("approx")), "note": p.get("note")}


def setup_price(setup: Mapping[str, Any], catalog: Mapping[str, Any], pricing: str,
                flags: Mapping[str, float], today: str) -> dict[str, Any]:
    """One setup's price (module docstring's order); `usd_per_hour` None plus `missing` if none."""
    name, sku = str(setup.get("name")), setup.get("hardware")
    if name in flags:
        return _user_price(flags[name], "--price-per-hour flag", today, sku)
    if name in catalog["setups"]:
        p = catalog["setups"][name]
        return _user_price(float(p["usd_per_hour"]), p.get("source", "prices file"), str(p.get("read_on", today)), sku)
    if setup.get("price_per_hour") is not None:
        return _user_price(float(setup["price_per_hour"]), "price_per_hour in the sweep spec", today, sku)
    if sku is not None and sku in flags:
        return _user_price(flags[sku], "--price-per-hour flag", today, sku)
    if not sku:
        return {"usd_per_hour": None, "missing": f"no price: name its hardware in the sweep spec or pass "
                                                 f"--price-per-hour {name}=USD"}
    return _catalog_price(catalog, sku, pricing)


def sweep_prices(sweep: Mapping[str, Any], pricing: str = "on-demand", overrides: str | None = None,
                 flags: Sequence[str] | None = None, today: str | None = None) -> dict[str, dict[str, Any]]:
    """{setup name: price} for every setup of a sweep result."""
    check_pricing(pricing)
    catalog = load_catalog(overrides)
    parsed = parse_price_flags(flags)
    names = {s.get("name") for s in sweep.get("setups") or []} | set(catalog["skus"])
    unknown = sorted(set(parsed) - names)
    if unknown:
        raise UserError(f"--price-per-hour names {', '.join(unknown)}: not a setup of the sweep nor a SKU "
                        f"in the catalog")
    today = today or datetime.date.today().isoformat()
    return {s.get("name"): setup_price(s, catalog, pricing, parsed, today) for s in sweep.get("setups") or []}


def describe(price: Mapping[str, Any] | None) -> str:
    """`prices as of 2026-12-03, source: URL` (or why there is no price), for every $ shown."""
    if not price or price.get("usd_per_hour") is None:
        return (price or {}).get("missing", "no price")
    approx = " (approximate)" if price.get("approx") else ""
    return f"prices as of {price.get('as_of') or 'unknown date'}, source: {price.get('source')}{approx}"
