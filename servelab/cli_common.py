"""What the `servelab` commands share: the Typer app, common option types and flag parsers.

Kept free of heavy imports (torch, duckdb, pandas, streamlit) so that `--help` is instant;
`servelab/cli.py` (the entry point) and `servelab/cli_run.py` (`serve` and `run`) register
their commands on `app`.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from servelab.config import DEFAULT_STORE, ENV_PREFIX

__all__ = ["DEFAULT_STORE", "ConfigOpt", "JsonOpt", "StoreOpt", "app", "parse_indices", "parse_slo_flag",
           "stderr_console", "stdout_console"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure what each LLM-serving lever buys on your own traffic and hardware.",
)

StoreOpt = Annotated[
    str, typer.Option("--store", envvar=f"{ENV_PREFIX}STORE", help="DuckDB store file")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]
ConfigOpt = Annotated[str | None, typer.Option(
    "--config", help="YAML or JSON file of settings (flags given override it; docs: servelab/layers.py)")]


def parse_slo_flag(text: str | None):
    """Parses an SLO flag; a bad string is a user mistake, not a crash."""
    from analysis.slo import parse_slo
    from servelab.errors import UserError

    try:
        return parse_slo(text) if text else None
    except ValueError as exc:
        raise UserError(str(exc)) from None


def parse_indices(text: str | None) -> list[int] | None:
    """`0,1` -> [0, 1]; a bad list is a user mistake."""
    from servelab.errors import UserError

    if not text:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"bad --gpu-devices {text!r}: expected indices like 0,1") from None


# Piped or captured output (a CI log, `| tee`) has no width: rich would assume 80 columns and
# elide a wide table's figures with "…". Such output gets room instead ($COLUMNS still wins).
LOG_WIDTH = 200


def _console(stderr: bool):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if not stream.isatty() and "COLUMNS" not in os.environ:
        return Console(stderr=stderr, width=LOG_WIDTH)
    return Console(stderr=stderr)


def stdout_console():
    return _console(stderr=False)


def stderr_console():
    return _console(stderr=True)
