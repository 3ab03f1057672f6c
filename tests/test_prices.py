"""servelab/prices.py: the shipped catalog, overrides that never edit it, a price per setup."""

from __future__ import annotations

import re

import pytest

from servelab.errors import UserError
from servelab.prices import CATALOG, describe, load_catalog, parse_price_flags, sweep_prices
from tests.sweep_fixtures import setup, sweep

PRICE_KEYS = ("on_demand", "spot", "reserved_1y", "reserved_3y")


def test_shipped_catalog_every_price_has_a_source_and_a_date():
    cat = load_catalog()
    assert "local-cpu" in cat["skus"]
    assert not any(k in cat["skus"]["local-cpu"] for k in PRICE_KEYS)   # its price is the user's to set
    priced = 0
    for sku, entry in cat["skus"].items():
        for field in ("accelerator", "count", "memory_gib", "tdp_w"):
            assert field in entry, (sku, field)
        for key in PRICE_KEYS:
            if key in entry:
                p = entry[key]
                priced += 1
                assert p["usd_per_hour"] > 0
                assert p["source"].startswith("https://"), (sku, key)
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(p["read_on"])), (sku, key)
    assert priced >= 6


def test_catalog_price_under_the_chosen_pricing(tmp_path):
    s = sweep(setup("g5", [2.0], hardware="aws-g5.xlarge"))
    p = sweep_prices(s, "on-demand", today="2026-12-03")["g5"]
    assert p["usd_per_hour"] == 1.006 and p["pricing"] == "on-demand" and p["sku"] == "aws-g5.xlarge"
    assert p["as_of"] == "2026-12-03" and p["source"].startswith("https://")
    missing = sweep_prices(s, "spot")["g5"]
    assert missing["usd_per_hour"] is None and "no spot price for aws-g5.xlarge" in missing["missing"]


def test_overrides_file_and_flags_win_and_the_catalog_is_untouched(tmp_path):
    before = CATALOG.read_bytes()
    f = tmp_path / "prices.toml"
    f.write_text('[skus."aws-g5.xlarge".spot]\nusd_per_hour = 0.45\nsource = "https://example.test/spot"\n'
                 'read_on = "2026-11-30"\n\n[setups.cpu]\nusd_per_hour = 0.12\nsource = "our invoice"\n')
    s = sweep(setup("g5", [2.0], hardware="aws-g5.xlarge"), setup("cpu", [1.0], hardware="local-cpu"),
              setup("spec", [1.0], price=0.3), setup("flagged", [1.0], hardware="local-cpu"))
    prices = sweep_prices(s, "spot", overrides=str(f), flags=["flagged=0.2"], today="2026-12-03")
    assert prices["g5"]["usd_per_hour"] == 0.45 and prices["g5"]["as_of"] == "2026-11-30"
    assert prices["cpu"]["usd_per_hour"] == 0.12 and prices["cpu"]["source"] == "our invoice"
    assert prices["spec"]["usd_per_hour"] == 0.3 and "sweep spec" in prices["spec"]["source"]
    assert prices["flagged"] == {**prices["flagged"], "usd_per_hour": 0.2, "source": "--price-per-hour flag",
                                 "as_of": "2026-12-03", "pricing": "user-set"}
    assert "2026-11-30" in describe(prices["g5"]) and "https://example.test/spot" in describe(prices["g5"])
    assert CATALOG.read_bytes() == before


def test_local_cpu_without_a_price_says_how_to_set_it():
    p = sweep_prices(sweep(setup("cpu", [1.0], hardware="local-cpu")))["cpu"]
    assert p["usd_per_hour"] is None and "--price-per-hour local-cpu=USD" in p["missing"]
    p = sweep_prices(sweep(setup("cpu", [1.0], hardware="local-cpu")), flags=["local-cpu=0.1"])["cpu"]
    assert p["usd_per_hour"] == 0.1


@pytest.mark.parametrize("bad", ["small", "small=", "=1", "small=abc", "small=-1"])
def test_bad_flags_are_user_errors(bad):
    with pytest.raises(UserError, match="--price-per-hour"):
        parse_price_flags([bad])


def test_unknown_names_pricing_and_files_are_user_errors(tmp_path):
    s = sweep(setup("a", [1.0]))
    with pytest.raises(UserError, match="nope"):
        sweep_prices(s, flags=["nope=1"])
    with pytest.raises(UserError, match="--pricing"):
        sweep_prices(s, "cheap")
    with pytest.raises(UserError, match="not found"):
        sweep_prices(s, overrides=str(tmp_path / "none.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[[[")
    with pytest.raises(UserError, match="not valid TOML"):
        sweep_prices(s, overrides=str(bad))
