"""Prices, the pure part: a setup's price from the catalog dict, the overrides and the flags.

servelab/prices.py reads the catalog (data/hardware/catalog.toml) and the overrides file;
this module resolves prices from what was read, so the CLI and the dashboard (which may not
import the CLI package) resolve them the same way. The order, first found wins: a flag
naming the setup; a `[setups.NAME]` entry of the prices file; the setup's `price_per_hour`
from the sweep spec; a flag naming its `hardware` SKU; the SKU's catalog entry under the
chosen pricing. A user-set figure is used as given (`pricing: "user-set"`). A bad flag or
pricing is a ValueError with a one-line message (servelab/prices.py makes it a UserError).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


CATALOG_NAME = "catalog.toml"
PRICINGS = {"on-demand": "on_demand", "spot": "spot", "reserved-1y": "reserved_1y", "reserved-3y": "reserved_3y"}


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of base with extra's tables merged in, key by key (the inputs stay as they were)."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


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
            raise ValueError(f"bad --price-per-hour {text!r}: expected NAME=USD (a setup or a SKU), e.g. small=0.40")
        out[name.strip()] = usd
    return out


def check_pricing(pricing: str) -> str:
    if pricing not in PRICINGS:
        raise ValueError(f"bad --pricing {pricing!r}: use one of {', '.join(PRICINGS)}")
    return pricing


def _user_price(usd: float, source: str, as_of: str, sku: str | None = None) -> dict[str, Any]:
    return {"usd_per_hour": usd, "pricing": "user-set", "source": source, "as_of": as_of, "sku": sku,
            "approx": False, "note": None}


def _catalog_price(catalog: Mapping[str, Any], sku: str, pricing: str) -> dict[str, Any]:
    entry = catalog["skus"].get(sku)
    if entry is None:
        return {"usd_per_hour": None, "missing": f"hardware {sku!r} is not in the price catalog "
                                                 f"({CATALOG_NAME}): pass --price-per-hour {sku}=USD"}
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


def resolve_prices(sweep: Mapping[str, Any], catalog: Mapping[str, Any], pricing: str,
                   flags: Sequence[str] | None, today: str) -> dict[str, dict[str, Any]]:
    """{setup name: price} for every setup of a sweep result, from a catalog already read."""
    check_pricing(pricing)
    parsed = parse_price_flags(flags)
    names = {s.get("name") for s in sweep.get("setups") or []} | set(catalog["skus"])
    unknown = sorted(set(parsed) - names)
    if unknown:
        raise ValueError(f"--price-per-hour names {', '.join(unknown)}: not a setup of the sweep nor a SKU "
                        f"in the catalog")
    return {str(s.get("name")): setup_price(s, catalog, pricing, parsed, today) for s in sweep.get("setups") or []}


def describe(price: Mapping[str, Any] | None) -> str:
    """`prices as of 2026-12-03, source: URL` (or why there is no price), for every $ shown."""
    if not price or price.get("usd_per_hour") is None:
        return (price or {}).get("missing", "no price")
    approx = " (approximate)" if price.get("approx") else ""
    return f"prices as of {price.get('as_of') or 'unknown date'}, source: {price.get('source')}{approx}"
