"""Command line: `python -m app` serves; `demo` runs the offline demo; `watch`, `submit`,
`orders`, `book` and `account` are terminal clients of a running service (--url, --token
or API_TOKEN)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import sys

from pydantic import ValidationError

from app.logs import configure_logging
from app.serving import CannotListen, listen, listening_url, run_until_stopped
from app.settings import Settings, describe_error


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


def install_uvloop(wanted: bool) -> bool:
    """Use uvloop's event loop when it is installed and not turned off (UVLOOP=false)."""
    if not wanted:
        return False
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def tune_gc() -> None:
    """Collect young objects less often, and never rescan what start-up allocated.

    Every order and update allocates short-lived objects that reference counting frees on
    its own; at the default threshold (700) the cyclic collector runs every few requests
    and rescans the resting orders each time it reaches the older generations. Measured
    under load this gives about a quarter more orders per second (BENCHMARKS.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _listen_or_exit(settings: Settings) -> list[socket.socket]:
    try:
        return listen(settings.http_host, settings.http_port)
    except CannotListen as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def serve(settings: Settings) -> None:
    from app.application import create_app

    sockets = _listen_or_exit(settings)
    configure_logging(settings.log_format, settings.log_level)
    install_uvloop(settings.uvloop)
    tune_gc()
    url = listening_url(settings.http_host, sockets)

    def announce() -> None:
        # stdout: stderr carries the logs, one JSON object per line in production.
        print(
            f"trade executor listening on {url} (market data: {settings.binance_ws_url})",
            flush=True,
        )

    async def main() -> None:
        await run_until_stopped(create_app(settings), sockets, on_listening=announce)

    asyncio.run(main())


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

    from app.terminal.cli import COMMANDS, add_commands

    add_commands(commands)
    args = parser.parse_args(argv)

    if args.command in COMMANDS:
        from app.terminal.cli import run

        raise SystemExit(run(args))
    if args.command == "demo":
        from app.demo import run_demo

        try:
            run_demo(_settings, speed=args.speed, walk_symbols=args.random_walk, seed=args.seed)
        except CannotListen as exc:
            print(exc, file=sys.stderr)
            raise SystemExit(2) from None
    else:
        serve(_settings())


if __name__ == "__main__":
    main()
