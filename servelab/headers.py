"""Extra request headers (`--header 'K: V'`): parsing, checking, and keeping secrets out.

Gateways want their own headers (a routing key, an API version, a tenant). Some of them are
credentials. A header whose name or value looks like one (see `is_secret`) is stored, in
every dump of the config (the run's stored config, worker spec files, exports), with its
value replaced by `REDACTED`: only its name is kept. The real values reach the load
generator through its environment (`HEADERS_ENV`, JSON), as API keys do, never through a
file. A worker on another machine (Locust master mode) needs `HEADERS_ENV` set there.
Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

HEADERS_ENV = "SERVELAB_HEADERS"  # JSON {name: value}: the real header values, for the workers
REDACTED = "<redacted>"
# Words that mark a header as a credential, in its name (case-insensitive).
_SECRET_NAMES = ("auth", "key", "token", "secret", "cookie", "password", "credential", "session", "signature")
_SECRET_VALUES = re.compile(r"^(bearer|basic|token)\s|^(sk|pk|rk|hf|ghp|xox[a-z])[-_]", re.IGNORECASE)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name characters
# The load generator writes these itself: another value would break the request's framing.
_OWN = {"host", "content-length", "content-type", "transfer-encoding", "connection", "x-request-id", "accept"}


def is_secret(name: str, value: str) -> bool:
    """Whether a header looks like a credential (then only its name is ever stored)."""
    low = name.lower()
    return any(word in low for word in _SECRET_NAMES) or bool(_SECRET_VALUES.match(value.strip()))


def redacted(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` with every credential-like value replaced by REDACTED."""
    return {k: REDACTED if is_secret(k, v) else v for k, v in headers.items()}


def parse_header(text: str) -> tuple[str, str]:
    """`'X-Tenant: a'` -> ('X-Tenant', 'a'); ValueError (one line) when malformed."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name:
        raise ValueError(f"bad header {name or text!r}: expected 'Name: value'")
    check(name, value)
    return name, value


def check(name: str, value: str) -> None:
    """ValueError when a header could not be sent as given (the message never holds the value)."""
    if not _TOKEN.match(name):
        raise ValueError(f"bad header name {name!r}")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"header {name}: a value cannot hold a line break")
    try:
        value.encode("latin-1")  # HTTP/1.1 header bytes
    except UnicodeEncodeError:
        raise ValueError(f"header {name}: the value must be Latin-1 text") from None
    if name.lower() in _OWN:
        raise ValueError(f"header {name} is written by the load generator itself")


def merged(stored: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The headers to send: the config's, with the real values from HEADERS_ENV where it
    has them (a REDACTED value with no real one is dropped rather than sent)."""
    real = json.loads(environ.get(HEADERS_ENV) or "{}")
    out = {k: real.get(k, v) for k, v in stored.items()}
    return {k: v for k, v in out.items() if v != REDACTED}
