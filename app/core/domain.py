"""Types shared by every layer: order sides and statuses, quotes, fills."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderStatus(enum.StrEnum):
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self not in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


class OrderType(enum.StrEnum):
    LIMIT = "limit"
    MARKET = "market"  # an IOC with no price limit: `price` is None


class TimeInForce(enum.StrEnum):
    """How long an order may wait for liquidity (CONTRACT.md, "Paper account")."""

    GTT = "GTT"  # good till time: rests until expires_at
    IOC = "IOC"  # takes what the current quote offers, then the rest expires
    FOK = "FOK"  # fills entirely from the current quote, or expires with no fill


class StreamKind(enum.StrEnum):
    """The upstream market stream, as the MARKET_STREAM setting names it."""

    BOOK_TICKER = "bookTicker"
    DEPTH5 = "depth5"
    DEPTH10 = "depth10"
    DEPTH20 = "depth20"

    @property
    def is_depth(self) -> bool:
        return self is not StreamKind.BOOK_TICKER

    def stream_name(self, symbol: str) -> str:
        """Binance stream name: lower-case symbol, the rest spelled exactly."""
        if self is StreamKind.BOOK_TICKER:
            return f"{symbol.lower()}@bookTicker"
        return f"{symbol.lower()}@{self.value}@100ms"


Level = tuple[Decimal, Decimal]
"""(price, quantity) of one displayed book level."""


@dataclass(slots=True)  # not frozen: frozen __init__ costs ~3x on the hottest path
class BookUpdate:
    """One upstream quote for a symbol.

    `bids` are best (highest) first and `asks` best (lowest) first. A bookTicker update
    has one level per side; a partial-depth update up to 5/10/20. Treat it as immutable.
    `full_depth` is True
    for partial-book snapshots: a ledger price inside the shown range that the snapshot
    does not list has been traded through.
    """

    symbol: str
    update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    received_at: float  # time.time() when the frame arrived
    full_depth: bool = False


class BookTicker(BookUpdate):
    """A bookTicker update kept as the frame's text: its Decimals are made on first read.

    Most tickers can fill nothing, and the matcher decides that from the text
    (`SymbolMatcher.take_if_stale_or_quiet`), so they never pay for four Decimals. Reading `bids`
    or `asks` decodes both once (what BookUpdate holds, exactly). The texts must already
    be validated as the parser does: plain decimals within the contract's bounds.

    The feed's parser builds it straight from its regex match (`frame`), without taking
    the texts out: `texts` is then made on first read. Such a match has, as ASCII bytes,
    group FRAME_QUOTE the whole "b".."A" part of the frame (equal parts: equal texts),
    groups FRAME_BID/FRAME_ASK the best bid/ask and FRAME_TEXTS the four texts in order.
    """

    __slots__ = ("frame", "texts")
    full_depth = False  # a ticker never is; a class value: one store less per frame

    def __init__(
        self,
        symbol: str,
        update_id: int,
        texts: tuple[str, str, str, str] | None,  # bid, its quantity, ask, its quantity
        received_at: float,
        frame: re.Match[bytes] | None = None,
    ) -> None:
        self.symbol = symbol
        self.update_id = update_id
        self.received_at = received_at
        self.frame = frame
        if texts is not None:
            self.texts = texts

    def __getattr__(self, name: str) -> Any:
        # Only reached while `texts`, `bids` or `asks` are unset (their first read).
        if name == "texts":
            frame = self.frame
            if frame is None:
                raise AttributeError(name)
            bid, bid_qty, ask, ask_qty = frame.group(*FRAME_TEXTS)
            self.texts = (bid.decode(), bid_qty.decode(), ask.decode(), ask_qty.decode())
            return self.texts
        if name != "bids" and name != "asks":
            raise AttributeError(name)
        bid_text, bid_qty_text, ask_text, ask_qty_text = self.texts
        bid, ask = Decimal(bid_text), Decimal(ask_text)
        # Price 0 is Binance's empty side: nothing there to take.
        self.bids = ((bid, Decimal(bid_qty_text)),) if bid else ()
        self.asks = ((ask, Decimal(ask_qty_text)),) if ask else ()
        return self.bids if name == "bids" else self.asks


FRAME_QUOTE = 3
FRAME_BID = 4
FRAME_ASK = 6
FRAME_TEXTS = (4, 5, 6, 7)


@dataclass(frozen=True, slots=True)
class MarketState:
    """What matching remembers of one symbol's upstream book across restarts (rules 1, 3).

    `asks` and `bids` are the ledgers: (price, quantity already taken there), per book side.
    """

    symbol: str
    last_update_id: int | None
    asks: tuple[Level, ...] = ()
    bids: tuple[Level, ...] = ()

    @property
    def is_blank(self) -> bool:
        return self.last_update_id is None and not self.asks and not self.bids


@dataclass(frozen=True, slots=True)
class Execution:
    """What the matching engine decided: `qty` of `order_id` taken at `price`."""

    order_id: str
    update_id: int
    price: Decimal
    qty: Decimal
