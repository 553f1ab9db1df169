"""Fans order events and book quotes out to websocket clients.

One bus subscription for the whole process; each event is encoded once, as a complete
websocket frame, and the same bytes go to every interested client. The clients that keep
up are written to once per round of events (the events the bus handed over together,
such as a fill and the order's end), in one callback after the round.

Snapshot then deltas with no gap and no duplicate: a client's interest in an order is
registered *before* its snapshot is read from the store, and events that arrive while the
snapshot loads are held. Events are published only after their commit, so a held event
is either already in the snapshot (its fill seq is covered, or the snapshot is final)
and dropped, or newer and sent after the snapshot, in order.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import orjson

from app import tracing
from app.clock import rfc3339
from app.core.decimals import fmt
from app.core.domain import BookUpdate
from app.core.events import EventKind, OrderEvent
from app.ports import EventBus
from app.push.accounts import AccountPusher, ReadAccount
from app.push.client import OrderInterest, PushClient
from app.push.frames import Frame
from app.schemas import fill_json, order_json


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def book_message(update: BookUpdate) -> dict[str, Any]:
    bid, bid_qty = update.bids[0] if update.bids else (None, None)
    ask, ask_qty = update.asks[0] if update.asks else (None, None)
    message: dict[str, Any] = {
        "type": "book",
        "symbol": update.symbol,
        "update_id": update.update_id,
        "bid": None if bid is None else fmt(bid),
        "bid_qty": None if bid_qty is None else fmt(bid_qty),
        "ask": None if ask is None else fmt(ask),
        "ask_qty": None if ask_qty is None else fmt(ask_qty),
        "ts": rfc3339(int(update.received_at * 1_000_000)),
    }
    if update.full_depth:  # depth mode: the visible levels too, best first (the page's book)
        message["bids"] = [[fmt(price), fmt(qty)] for price, qty in update.bids]
        message["asks"] = [[fmt(price), fmt(qty)] for price, qty in update.asks]
    return message


def _order_frame(event: OrderEvent) -> Frame:
    """The event as the contract shows it, rendered once for every client that gets it."""
    message: dict[str, Any] = {
        "type": "order",
        "event": event.kind.value,
        "order": order_json(event.order, with_fills=False),
    }
    if event.fill is not None:
        message["fill"] = fill_json(event.fill)
    return Frame.of(orjson.dumps(message))


class PushHub:
    def __init__(
        self,
        bus: EventBus,
        *,
        acquire_book: Callable[[str], None],
        release_book: Callable[[str], None],
        read_account: ReadAccount | None = None,
    ) -> None:
        self._bus = bus
        self._acquire_book = acquire_book
        self._release_book = release_book
        self.clients: set[PushClient] = set()
        self._by_order: dict[str, set[PushClient]] = defaultdict(set)
        self._orders_channel: dict[str, set[PushClient]] = defaultdict(set)
        self._by_book: dict[str, set[PushClient]] = defaultdict(set)
        self._last_book: dict[str, Frame] = {}
        self._per_owner: Counter[str] = Counter()
        self._to_flush: list[PushClient] = []  # clients with frames pushed this round
        # The account channel: its clients per owner, and the owners' pushes.
        self._account_channel: dict[str, set[PushClient]] = {}
        self.accounts = (
            None if read_account is None else AccountPusher(read_account, self._send_account)
        )
        self._flush_scheduled = False

    async def run(self) -> None:
        subscription = self._bus.subscribe()
        try:
            async for event in subscription:
                self.dispatch(event)
        finally:
            subscription.close()
            if self.accounts is not None:
                await self.accounts.close()

    # -- fan-out --------------------------------------------------------------------------

    def dispatch(self, event: OrderEvent) -> None:
        if event.trace is not None and tracing.ENABLED:
            self._dispatch_traced(event)
            return
        self._dispatch(event)

    def _dispatch_traced(self, event: OrderEvent) -> None:
        """A span in the order's trace around the one rendering and the queueing."""
        parent = tracing.extract(event.trace)
        with tracing.span("push.order", event.order, parent=parent, kind="consumer") as span:
            span.set_attributes({"event": event.kind.value, "clients": self._dispatch(event)})

    def _dispatch(self, event: OrderEvent) -> int:
        """Push the event's frame to every client it concerns; how many there were."""
        if self._account_channel and event.owner in self._account_channel:
            assert self.accounts is not None
            self.accounts.changed(event.owner)  # every account change comes with an event
        watchers = self._by_order.get(event.order_id, ())
        channel = self._orders_channel.get(event.owner, ())
        mine = [client for client in watchers if client.owner == event.owner]
        if not mine and not channel:
            return 0
        frame = _order_frame(event)
        for client in mine:
            interest = client.orders.get(event.order_id)
            if interest is None:
                self._push(client, frame)
            elif not interest.ready:
                interest.held.append((event.kind, event.fill_seq, frame))
            else:
                self._deliver(client, interest, event.kind, event.fill_seq, frame)
        sent = len(mine)
        # The channel's clients that do not watch the order itself: no snapshot to follow.
        to_flush = self._to_flush
        for client in channel:
            if client in watchers:
                continue
            sent += 1
            if client.push(frame):
                to_flush.append(client)
        self._flush_soon()
        return sent

    def _push(self, client: PushClient, frame: Frame) -> None:
        if client.push(frame):
            self._to_flush.append(client)
            self._flush_soon()

    def _flush_soon(self) -> None:
        """Once the events handed over together are all pushed: the round's writes."""
        if self._to_flush and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """The round is over: one write per client that was pushed to."""
        self._flush_scheduled = False
        clients, self._to_flush = self._to_flush, []
        for client in clients:
            client.flush()

    def _deliver(
        self, client: PushClient, interest: OrderInterest, kind: EventKind, fill_seq: int,
        frame: Frame,
    ) -> None:  # fmt: skip
        if interest.final or kind is EventKind.ACCEPTED:
            return  # the snapshot already covers it
        if kind is EventKind.FILL:
            if fill_seq <= interest.fill_seq:
                return
            interest.fill_seq = fill_seq
        elif kind.is_final:
            interest.final = True
        self._push(client, frame)

    def on_update(self, update: BookUpdate) -> None:
        clients = self._by_book.get(update.symbol)
        if not clients:
            return
        frame = Frame.of(orjson.dumps(book_message(update)))
        self._last_book[update.symbol] = frame
        to_flush = self._to_flush
        for client in clients:
            if client.push_book(update.symbol, frame):
                to_flush.append(client)
        self._flush_soon()

    # -- subscriptions --------------------------------------------------------------------

    def add_client(self, client: PushClient) -> None:
        self.clients.add(client)
        self._per_owner[client.owner] += 1

    @property
    def book_symbols(self) -> int:
        """Symbols whose latest quote is kept (only while someone watches them)."""
        return len(self._last_book)

    def connections_of(self, owner: str) -> int:
        return self._per_owner[owner]

    def remove_client(self, client: PushClient) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self._per_owner[client.owner] -= 1
        for order_id in list(client.orders):
            self.unwatch_order(client, order_id)
        if client.orders_channel:
            self._orders_channel[client.owner].discard(client)
        if client.account_channel:
            self.unwatch_account(client)
        for symbol in list(client.books):
            self.unwatch_book(client, symbol)

    def watch_order(self, client: PushClient, order_id: str) -> OrderInterest:
        """Start holding the order's events; call `start_order` once the snapshot is out."""
        interest = client.orders.get(order_id)
        if interest is None:
            interest = client.orders[order_id] = OrderInterest()
            self._by_order[order_id].add(client)
        return interest

    def start_order(self, client: PushClient, order_id: str, *, fill_seq: int, final: bool) -> None:
        interest = client.orders[order_id]
        interest.fill_seq, interest.final, interest.ready = fill_seq, final, True
        held, interest.held = interest.held, []
        for kind, seq, frame in held:
            self._deliver(client, interest, kind, seq, frame)

    def unwatch_order(self, client: PushClient, order_id: str) -> None:
        client.orders.pop(order_id, None)
        watchers = self._by_order.get(order_id)
        if watchers is not None:
            watchers.discard(client)
            if not watchers:
                del self._by_order[order_id]

    def watch_orders_channel(self, client: PushClient) -> None:
        client.orders_channel = True
        self._orders_channel[client.owner].add(client)

    def unwatch_orders_channel(self, client: PushClient) -> None:
        client.orders_channel = False
        self._orders_channel[client.owner].discard(client)

    def watch_account(self, client: PushClient) -> None:
        """The owner's account from now on, starting with its current state (pushed, like
        every later one, in order: never a state older than one already sent)."""
        if self.accounts is None:  # a hub built without accounts (tests of the push alone)
            raise RuntimeError("this hub has no account channel: give it read_account")
        client.account_channel = True
        self._account_channel.setdefault(client.owner, set()).add(client)
        self.accounts.changed(client.owner)

    def unwatch_account(self, client: PushClient) -> None:
        client.account_channel = False
        watchers = self._account_channel.get(client.owner)
        if watchers is not None:
            watchers.discard(client)
            if not watchers:
                del self._account_channel[client.owner]

    def _send_account(self, owner: str, message: str) -> None:
        for client in self._account_channel.get(owner, ()):
            client.send(message)

    def watch_book(self, client: PushClient, symbol: str) -> None:
        if symbol in client.books:
            return
        client.books.add(symbol)
        watchers = self._by_book[symbol]
        if not watchers:
            self._acquire_book(symbol)
        watchers.add(client)
        last = self._last_book.get(symbol)
        if last is not None:
            client.send_book(symbol, last.text)

    def unwatch_book(self, client: PushClient, symbol: str) -> None:
        client.books.discard(symbol)
        watchers = self._by_book.get(symbol)
        if watchers is None:
            return
        watchers.discard(client)
        if not watchers:
            del self._by_book[symbol]
            self._last_book.pop(symbol, None)  # nothing is kept for a symbol nobody watches
            self._release_book(symbol)
