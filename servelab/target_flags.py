"""`servelab run` flags that depend on the target: the built-in server's own flags (refused
with a URL target, where they would be stored as if true) and `--header 'K: V'` for any
OpenAI-compatible server (servelab/knobs.py generates the rest from the model)."""

from __future__ import annotations

from servelab import layers
from servelab.errors import UserError
from servelab.headers import parse_header

BUILTIN_PANEL = "Built-in server"  # the rich help panel of every flag that configures it


def refuse_builtin_flags(ctx, target: str) -> None:
    """One error line when a built-in-server flag was given on the command line with a URL
    target (given: by the click parameter source, so a default never counts)."""
    if target == "builtin":
        return
    given = layers.given_by(ctx)
    for param in ctx.command.params:
        if getattr(param, "rich_help_panel", None) == BUILTIN_PANEL and given(param.name):
            flag = max(param.opts, key=len)
            hint = "; the model name sent to your server is --served-model" if param.name == "model" else ""
            where = target if target.startswith("--engine") else "--target URL"
            raise UserError(f"{flag} configures the built-in server; it has no effect on {where}{hint}")


HEADER_HELP = "extra request header 'Name: value', repeatable (credential-like values are never stored)"


def parse_headers(values: list[str] | None) -> dict[str, str]:
    """`--header 'K: V'` (repeatable) -> {K: V}; a malformed one is one error line."""
    out: dict[str, str] = {}
    for text in values or []:
        try:
            name, value = parse_header(text)
        except ValueError as exc:
            raise UserError(f"--header: {exc}") from None
        out[name] = value
    return out
