"""`python -m serving --config-json '<ServerConfig JSON>'` (or `--config-file PATH`).

A bad config is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from servelab.config import ServerConfig

EXIT_BAD_CONFIG = 2


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving", description="servelab reference server")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config-json", help="ServerConfig as JSON, e.g. '{\"model\": \"tiny\"}'")
    source.add_argument("--config-file", help="path to a JSON file holding a ServerConfig")
    return parser.parse_args(argv)


def load_config(args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig from the arguments; raises ValueError with a one-line reason."""
    if args.config_file:
        try:
            text = Path(args.config_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read config file: {exc}") from None
    else:
        text = args.config_json or "{}"
    try:
        return ServerConfig.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"invalid server config: {where + ': ' if where else ''}{first['msg']}") from None


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        cfg = load_config(args)
        from serving.server import run_server  # heavy imports only once the config is good

        run_server(cfg)
    except ValueError as exc:  # bad config, or a setup the model cannot build
        print(f"servelab serve: error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except OSError as exc:  # e.g. the port is taken
        print(f"servelab serve: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
