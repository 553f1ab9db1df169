"""The terminal subcommands of `python -m app`: watch, submit, orders, book, account.

Each takes `--url` and `--token` (or the API_URL / API_TOKEN environment variables), prints
a refusal from the service (401, 404, 422 with its details, 429) or a failure to reach it
as one line, and exits 2 then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

import aiohttp

from app.terminal.api import EXIT_REFUSED, Api, ApiError, default_token, default_url

COMMANDS = ("watch", "submit", "orders", "book", "account")
STATUSES = ("open", "partially_filled", "filled", "expired", "cancelled", "rejected")

CONNECTION_HELP = """\
connection:
  --url defaults to $API_URL, else http://$HTTP_HOST:$HTTP_PORT (http://127.0.0.1:8080).
  --token defaults to $API_TOKEN; it is needed when the service runs with API_TOKENS set
  (sent as "Authorization: Bearer <token>").
  Prices are shown rounded to the symbol's tick, quantities to its step (the API is exact).
  A refusal (401, 404, 422, 429, ...) or an unreachable service prints one line, exit 2."""


def _connection_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--url", default=None, help="the service's base URL (default: $API_URL, else "
        "http://$HTTP_HOST:$HTTP_PORT, i.e. http://127.0.0.1:8080)",
    )  # fmt: skip
    command.add_argument(
        "--token", default=None, help="API token (default: $API_TOKEN; needed when the "
        "service sets API_TOKENS)",
    )  # fmt: skip


def add_commands(commands: Any) -> None:
    """Add the terminal subcommands to `python -m app`'s subparsers."""

    def add(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, description=textwrap.fill(description, 88),
            epilog=CONNECTION_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        return parser

    watch = add(
        "watch", "follow an order's fills in the terminal",
        "Follow an order over /ws until it ends: exit 0 filled, 1 expired/cancelled/"
        "rejected, 2 unknown order or refused.",
    )  # fmt: skip
    watch.add_argument("order_id", help="the order's id, or the tail of it `orders` shows")

    submit = add(
        "submit", "place an order (and --watch it)",
        "Place a limit order (POST /order/limit) or, with 'market' for the price, a market "
        "order (POST /order/market); print its id, or follow it with --watch.",
    )  # fmt: skip
    submit.add_argument("symbol")
    submit.add_argument("side", choices=["buy", "sell"])
    submit.add_argument("order_size")
    submit.add_argument("price", help='the limit price, or "market" for a market order')
    submit.add_argument("--timeout", type=float, dest="timeout_s",
                        help="seconds a limit order may rest (GTT)")  # fmt: skip
    submit.add_argument("--tif", choices=["GTT", "IOC", "FOK"], dest="time_in_force",
                        help="time in force of a limit order (default GTT)")  # fmt: skip
    submit.add_argument("--client-order-id", help="idempotency key")
    submit.add_argument("--watch", action="store_true", help="follow it until it ends")

    orders = add(
        "orders", "list recent orders as a table",
        "The owner's orders, newest first (GET /orders). IDs are shown by the tail that "
        "tells the listed orders apart (ids begin with a timestamp); --full-ids for whole ids.",
    )  # fmt: skip
    orders.add_argument("--status", choices=STATUSES, help="only orders in this status")
    orders.add_argument("--symbol", help="only orders of this symbol")
    orders.add_argument("--limit", type=int, default=20, help="orders per page, 1-500 (20)")
    pages = orders.add_mutually_exclusive_group()
    pages.add_argument("--cursor", help="the page after the one that printed this cursor")
    pages.add_argument("--all", action="store_true", dest="follow_all",
                       help="every page, to the oldest order")  # fmt: skip
    orders.add_argument("--full-ids", action="store_true", help="show whole order ids")

    book = add(
        "book", "follow a symbol's best bid/ask, redrawn at most --rate times a second",
        "Follow SYMBOL's top of book (/ws ?book=SYMBOL) for a person: bid, ask, spread and "
        "the quote's age, redrawn at most --rate times a second (the newest quote wins). "
        "Ctrl-C stops it (exit 0).",
    )  # fmt: skip
    book.add_argument("symbol")
    book.add_argument("--rate", type=float, default=4.0, help="redraws per second at most (4)")

    account = add(
        "account", "show paper balances and positions",
        "The owner's paper balances and positions (GET /account).",
    )  # fmt: skip
    for command in (watch, submit, orders, book, account):
        _connection_options(command)


def _submit_request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"symbol": args.symbol, "side": args.side, "order_size": args.order_size}
    if args.price.lower() == "market":
        if args.time_in_force or args.timeout_s is not None:
            raise ApiError("error: a market order is IOC: it takes no --tif or --timeout")
        if args.client_order_id:
            body["client_order_id"] = args.client_order_id
        return "/order/market", body
    body["price"] = args.price
    if args.timeout_s is not None:
        body["timeout_s"] = args.timeout_s
    if args.time_in_force:
        body["time_in_force"] = args.time_in_force
    if args.client_order_id:
        body["client_order_id"] = args.client_order_id
    return "/order/limit", body


async def _with_api(
    url: str, token: str | None, out: TextIO, work: Callable[[Api], Awaitable[int]]
) -> int:
    try:
        async with aiohttp.ClientSession() as session:
            return await work(Api(session, url, token))
    except ApiError as exc:
        print(exc, file=out, flush=True)
        return EXIT_REFUSED


async def _book(api: Api, args: argparse.Namespace, out: TextIO) -> int:
    from app.terminal.book import BookView, follow_book
    from app.terminal.precision import Precisions

    if args.rate <= 0:
        raise ApiError("error: --rate must be greater than 0")
    stop = asyncio.Event()  # Ctrl-C from here on ends the view with exit 0
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # not on Windows' event loop
        loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        symbol = args.symbol.upper()
        precision = await Precisions(api).of(symbol)
        view = BookView(symbol, out, precision, in_place=out.isatty())
        return await follow_book(
            api, symbol, view, rate=args.rate, stop=stop,
            announce=lambda line: print(line, file=out, flush=True),
        )  # fmt: skip
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)


EXIT_OUTPUT_CLOSED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run one terminal subcommand; its exit code (1, quietly, if stdout is closed early,
    as by `| head`; 130 when Ctrl-C stops a `watch`, which is not its normal end)."""
    try:
        return _run(args, out)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit: point it away.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OUTPUT_CLOSED


def _run(args: argparse.Namespace, out: TextIO) -> int:
    url = args.url or default_url()
    token = args.token or default_token()
    if args.command == "watch":
        from app.watch import watch

        return asyncio.run(watch(url, args.order_id, token=token, out=out))
    if args.command == "submit":
        from app.watch import submit

        try:
            path, body = _submit_request(args)
        except ApiError as exc:
            print(exc, file=out)
            return EXIT_REFUSED
        return asyncio.run(submit(url, body, token=token, follow=args.watch, out=out, path=path))
    if args.command == "orders":
        from app.terminal.orders import list_orders

        return asyncio.run(_with_api(url, token, out, lambda api: list_orders(
            api, out, status=args.status, symbol=args.symbol, limit=args.limit,
            cursor=args.cursor, follow_all=args.follow_all, full_ids=args.full_ids,
        )))  # fmt: skip
    if args.command == "book":
        return asyncio.run(_with_api(url, token, out, lambda api: _book(api, args, out)))
    from app.terminal.account import show_account

    return asyncio.run(_with_api(url, token, out, lambda api: show_account(api, out)))
