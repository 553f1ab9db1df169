"""Types shared by every layer: order sides and statuses, quotes, fills."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal


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
    (`SymbolMatcher.apply`), so they never pay for four Decimals. Reading `bids` or `asks`
    decodes both once (what BookUpdate holds, exactly). The texts must already be
    validated as the parser does: plain decimals within the contract's bounds.
    """

    __slots__ = ("texts",)

    def __init__(
        self,
        symbol: str,
        update_id: int,
        texts: tuple[str, str, str, str],  # best bid, its quantity, best ask, its quantity
        received_at: float,
    ) -> None:
        self.symbol = symbol
        self.update_id = update_id
        self.texts = texts
        self.received_at = received_at
        self.full_depth = False

    def __getattr__(self, name: str) -> tuple[Level, ...]:
        # Only reached while `bids`/`asks` are unset (the first read).
        if name != "bids" and name != "asks":
            raise AttributeError(name)
        bid_text, bid_qty_text, ask_text, ask_qty_text = self.texts
        bid, ask = Decimal(bid_text), Decimal(ask_text)
        # Price 0 is Binance's empty side: nothing there to take.
        self.bids = ((bid, Decimal(bid_qty_text)),) if bid else ()
        self.asks = ((ask, Decimal(ask_qty_text)),) if ask else ()
        return self.bids if name == "bids" else self.asks


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
