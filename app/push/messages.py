"""What a /ws client may send (CONTRACT.md, "WebSocket /ws"), as one discriminated union.

Each kind of message is a model; `parse` picks the model from the message's keys (an
`order_id` means one order, otherwise the `channel` names it), validates it, and either
returns the model or raises `BadMessage` naming everything that is wrong. A new channel
(say `{"op": "subscribe", "channel": "account"}`) is one more model, tagged with its
channel name in `ClientMessage`, and one more case where the session dispatches.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from app.core import rules
from app.schemas import Symbol

Op = Literal["subscribe", "unsubscribe"]
OPS: tuple[str, ...] = get_args(Op)
OP_MESSAGE = 'must be "subscribe" or "unsubscribe"'

ORDER_TAG = "order"


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # How the message is told apart, for the error that names the possible messages.
    shape: ClassVar[str]
    # What it is, for "... is not expected in <what>".
    what: ClassVar[str]

    op: Op = Field(description=OP_MESSAGE)


class OrderSubscription(_ClientMessage):
    """`{"op": ..., "order_id": "..."}`: one order's snapshot, then its events."""

    shape: ClassVar[str] = '"order_id"'
    what: ClassVar[str] = "a message with an order_id"

    order_id: str = Field(
        min_length=1, max_length=64, description="must be an order id string (1-64 characters)"
    )


class OrdersChannel(_ClientMessage):
    """`{"op": ..., "channel": "orders"}`: every order's events (of this owner)."""

    shape: ClassVar[str] = '"channel": "orders"'
    what: ClassVar[str] = "the orders channel"

    channel: Literal["orders"]


class AccountChannel(_ClientMessage):
    """`{"op": ..., "channel": "account"}`: the owner's account after each change."""

    shape: ClassVar[str] = '"channel": "account"'
    what: ClassVar[str] = "the account channel"

    channel: Literal["account"]


class BookChannel(_ClientMessage):
    """`{"op": ..., "channel": "book", "symbol": "..."}`: one symbol's top of book."""

    shape: ClassVar[str] = '"channel": "book" (with "symbol")'
    what: ClassVar[str] = "the book channel"

    channel: Literal["book"]
    symbol: Symbol = Field(description=rules.SYMBOL_MESSAGE)  # upper-cased


def _kind(message: Any) -> str | None:
    """The tag: "order" when `order_id` is present, else the `channel` value (if a string)."""
    if isinstance(message, dict):
        if "order_id" in message:
            return ORDER_TAG
        channel = message.get("channel")
    else:  # a model instance
        if isinstance(message, OrderSubscription):
            return ORDER_TAG
        channel = getattr(message, "channel", None)
    if not isinstance(channel, str) or channel == ORDER_TAG:  # "order" names no channel
        return None
    return channel


# The union of every message kind, each tagged as `_kind` names it.
_Variants = (
    Annotated[OrderSubscription, Tag(ORDER_TAG)]
    | Annotated[OrdersChannel, Tag("orders")]
    | Annotated[BookChannel, Tag("book")]
    | Annotated[AccountChannel, Tag("account")]
)


def _by_tag() -> dict[str, type[_ClientMessage]]:
    """Each member's tag and model, read from the union itself (one list to extend)."""
    models = {}
    for member in get_args(_Variants):
        model, *metadata = get_args(member)
        (tag,) = (item.tag for item in metadata if isinstance(item, Tag))
        models[tag] = model
    return models


_MODELS = _by_tag()
KIND_MESSAGE = "give either " + ", or ".join(model.shape for model in _MODELS.values())

ClientMessage = Annotated[
    _Variants,
    Discriminator(_kind, custom_error_type="message_kind", custom_error_message=KIND_MESSAGE),
]

_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)

_MAX_PROBLEMS = 4
_MAX_NAME = 40


class BadMessage(ValueError):
    """The message is JSON but not one this endpoint takes; str() says why, for the client."""


def parse(message: object) -> ClientMessage:
    """The message as its model, or BadMessage naming each problem."""
    try:
        return _ADAPTER.validate_python(message)
    except ValidationError as exc:
        raise BadMessage(_explain(exc, message)) from None


def _name(field: object) -> str:
    text = str(field)
    return text if len(text) <= _MAX_NAME else text[: _MAX_NAME - 1] + "…"


def _explain(exc: ValidationError, message: object) -> str:
    problems: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"]
        if len(loc) < 2:  # no model fits: say what the possible messages are
            op = message.get("op") if isinstance(message, dict) else None
            if op not in OPS:
                problems.append(f'"op" {OP_MESSAGE}')
            problems.append(KIND_MESSAGE)
            continue
        model, field = _MODELS[str(loc[0])], _name(loc[1])
        if error["type"] == "missing":
            problem = f'"{field}" is missing'
        elif error["type"] == "extra_forbidden":
            problem = f'"{field}" is not expected in {model.what}'
        elif error["type"] == "value_error":  # our own rule (app.core.rules) said why
            problem = f'"{field}" {error["ctx"]["error"]}'
        else:
            info = model.model_fields.get(field)
            described = info.description if info is not None else None
            problem = f'"{field}" {described or error["msg"]}'
        if problem not in problems:
            problems.append(problem)
    if len(problems) > _MAX_PROBLEMS:
        problems[_MAX_PROBLEMS:] = [f"and {len(problems) - _MAX_PROBLEMS} more"]
    return "; ".join(problems)
