"""Extra request headers: parsing, refusals, and credential values kept out of every dump."""

import json

import pytest

from servelab.config import LoadConfig, RunConfig
from servelab.headers import HEADERS_ENV, REDACTED, is_secret, merged, parse_header


def test_parse_header_splits_at_the_first_colon_and_strips():
    assert parse_header("X-Tenant:  team-a ") == ("X-Tenant", "team-a")
    assert parse_header("X-Url: http://a:1/b") == ("X-Url", "http://a:1/b")


@pytest.mark.parametrize(("text", "needle"), [
    ("no colon", "expected 'Name: value'"), (": v", "expected 'Name: value'"),
    ("Bad Name: v", "bad header name"), ("Content-Length: 3", "written by the load generator"),
    ("X-Snow: \u2603", "Latin-1"),
])
def test_bad_headers_are_one_line_without_the_value(text, needle):
    with pytest.raises(ValueError, match=needle) as err:
        parse_header(text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("name", "value", "secret"), [
    ("Authorization", "Bearer abc", True), ("X-Api-Key", "plain", True), ("X-Gateway-Token", "t", True),
    ("Cookie", "a=b", True), ("X-Route", "Bearer zzz", True), ("X-Whatever", "sk-proj-123", True),
    ("X-Tenant", "team-a", False), ("OpenAI-Beta", "assistants=v2", False),
])
def test_what_counts_as_a_credential(name, value, secret):
    assert is_secret(name, value) is secret


def test_every_dump_of_a_config_keeps_credential_values_out_and_the_workers_get_them_back():
    load = LoadConfig(headers={"X-Api-Key": "sk-123", "X-Tenant": "a"})
    assert load.headers["X-Api-Key"] == "sk-123"  # in memory, for this process
    for dumped in (load.model_dump(), load.model_dump(mode="json"), RunConfig(load=load).model_dump(mode="json")["load"]):
        assert dumped["headers"] == {"X-Api-Key": REDACTED, "X-Tenant": "a"}
    assert "sk-123" not in RunConfig(load=load).model_dump_json()
    spec_side = LoadConfig.model_validate_json(load.model_dump_json()).headers  # what a worker's spec file holds
    assert merged(spec_side, {HEADERS_ENV: json.dumps({"X-Api-Key": "sk-123"})}) == {"X-Api-Key": "sk-123",
                                                                                    "X-Tenant": "a"}
    assert merged(spec_side, {}) == {"X-Tenant": "a"}  # never sends the placeholder


def test_load_config_refuses_unsendable_headers_and_takes_the_old_model_key():
    with pytest.raises(ValueError, match="line break"):
        LoadConfig(headers={"X-A": "a\r\nX-B: b"})
    assert LoadConfig(model="m").served_model == "m" == LoadConfig(served_model="m").served_model


def test_a_sweep_spec_is_stored_without_credential_values_and_knows_what_it_withheld():
    from servelab.sweep_spec import SweepSpec

    spec = SweepSpec(name="gw", slo="ttft_p99<=500ms", search={"kind": "grid", "rates": [1]},
                     workload={"headers": {"X-Api-Key": "sk-9", "X-Tenant": "a"}, "served_model": "m"},
                     setups={"gw": {"target": "http://127.0.0.1:9"}})
    assert spec.load_for(1.0, 0).headers == {"X-Api-Key": "sk-9", "X-Tenant": "a"}  # what the points send
    stored = spec.model_dump(mode="json")
    assert "sk-9" not in json.dumps(stored) and stored["workload"]["served_model"] == "m"
    assert spec.withheld_headers() == [] and SweepSpec.model_validate(stored).withheld_headers() == ["X-Api-Key"]
