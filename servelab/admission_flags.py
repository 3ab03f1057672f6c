"""`--tiers` and `--tier-mix` flag text -> config values (the admission levers, serving/admission.py).

`--tiers "high:0:protected,low:1:rate=5:burst=10"`: comma-separated tiers, each
`NAME:PRIORITY` then optional `rate=R` (requests/s), `burst=B` and `protected`.
`--tier-mix "high:0.2,low:0.8"`: the share of requests sent with each tier's key.
API keys are never flags (a command line is visible to every user of the machine): they
come from SERVELAB_API_KEYS or `--api-keys-file`.
"""

from __future__ import annotations

from servelab.errors import UserError

_TIERS_HELP = 'use NAME:PRIORITY[:rate=R][:burst=B][:protected],..., e.g. "high:0:protected,low:1:rate=5"'


def parse_tiers(text: str | None) -> dict[str, dict]:
    """`"high:0:protected,low:1:rate=5"` -> {"high": {"priority": 0, "protected": True}, ...}."""
    if not text:
        return {}
    tiers: dict[str, dict] = {}
    for part in text.split(","):
        name, _, rest = part.strip().partition(":")
        fields = rest.split(":") if rest else []
        if not name or not fields or name in tiers:
            raise UserError(f"bad --tiers {text!r}: {_TIERS_HELP}")
        try:
            tier: dict = {"priority": int(fields[0])}
            for opt in fields[1:]:
                key, eq, value = opt.partition("=")
                if key == "protected" and not eq:
                    tier["protected"] = True
                elif key in ("rate", "burst") and eq:
                    tier[key] = float(value)
                else:
                    raise ValueError(opt)
        except ValueError:
            raise UserError(f"bad --tiers {text!r}: {_TIERS_HELP}") from None
        tiers[name] = tier
    return tiers


def parse_mix(text: str | None) -> dict[str, float] | None:
    """`"high:0.2,low:0.8"` -> {"high": 0.2, "low": 0.8}."""
    if not text:
        return None
    try:
        pairs = [part.strip().split(":") for part in text.split(",")]
        return {name: float(share) for name, share in pairs}
    except ValueError:
        raise UserError(f'bad --tier-mix {text!r}: use TIER:SHARE,..., e.g. "high:0.2,low:0.8"') from None
