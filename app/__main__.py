"""Command line: `python -m app` serves; `python -m app demo` runs the offline demo."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from app.logs import configure_logging
from app.settings import Settings, describe_error


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


def serve(settings: Settings) -> None:
    from aiohttp import web

    from app.application import create_app

    configure_logging(settings.log_format, settings.log_level)
    web.run_app(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        shutdown_timeout=2.0,
        print=None,
        access_log=None,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (the default)")
    demo = commands.add_parser("demo", help="offline demo: replayed Binance quotes + service")
    demo.add_argument("--speed", type=float, default=1.0, help="replay speed factor")
    demo.add_argument(
        "--random-walk",
        metavar="SYMBOL",
        action="append",
        default=[],
        help="also generate a seeded random walk for SYMBOL (repeatable)",
    )
    demo.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    if args.command == "demo":
        from app.demo import run_demo

        run_demo(_settings, speed=args.speed, walk_symbols=args.random_walk, seed=args.seed)
    else:
        serve(_settings())


if __name__ == "__main__":
    main()
