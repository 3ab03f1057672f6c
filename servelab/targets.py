"""Targets of a run: the built-in reference server (launched per run) or a given URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

from servelab.config import ServerConfig
from servelab.errors import UserError
from servelab.replicas import replicated_server
from servelab.servers import Target, server_processes

__all__ = ["Target", "builtin_server", "normalize_url"]


def normalize_url(url: str) -> str:
    """`http://h:8000/v1/` -> `http://h:8000`: the base the load generator appends paths to."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"bad target URL {url!r}: expected 'builtin' or http(s)://HOST[:PORT]")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise UserError(f"bad target URL {url!r}: invalid port") from None
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}"


@contextlib.contextmanager
def builtin_server(cfg: ServerConfig, start_timeout_s: float = 120.0) -> Iterator[Target]:
    """Run `python -m serving` with `cfg` for the duration of the block; yields its Target.
    With `cfg.replicas` > 1: that many servers behind HAProxy (servelab/replicas.py)."""
    from servelab import extras

    extras.require("server")  # one line now, not a traceback from the server process
    if cfg.replicas > 1:
        with replicated_server(cfg, start_timeout_s) as target:
            yield target
        return
    with server_processes(cfg, 1, start_timeout_s) as (target,):
        yield target
