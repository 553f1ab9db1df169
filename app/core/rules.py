"""The input rules, each written once: the validators, /openapi.json and the page use these.

Both patterns are plain ASCII classes, so they mean the same in Python's `re`, in JSON
Schema (ECMA-262) and in an HTML `pattern` attribute. `\\d`, `str.isdigit`, `Decimal()`
and `str.upper` all accept or produce non-ASCII characters ("٣", "１", "²", "ß" -> "SS"),
so none of them is used to decide what is valid.
"""

from __future__ import annotations

import re

# A symbol: 2-20 ASCII letters or digits, in any case; stored upper case.
SYMBOL_PATTERN = "^[A-Za-z0-9]{2,20}$"
SYMBOL_MESSAGE = "must be 2-20 letters or digits (A-Z, 0-9), e.g. LTCBTC"

# A decimal string: ASCII digits with an optional fraction; no sign, exponent, leading or
# trailing point, or whitespace. JSON numbers are accepted too (as exact decimals); both are
# then held to the same bounds (> 0, < 10^20, at most 18 digits after the point).
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
DECIMAL_MESSAGE = 'must be a decimal number such as "0.0025" (digits 0-9, an optional point)'

# A list cursor: the row id this service returned, a positive SQLite integer.
CURSOR_PATTERN = "^[0-9]{1,19}$"
CURSOR_MAX = 2**63 - 1

_SYMBOL = re.compile(SYMBOL_PATTERN)
_DECIMAL = re.compile(DECIMAL_PATTERN)
_CURSOR = re.compile(CURSOR_PATTERN)


def symbol(value: object) -> str:
    """The symbol upper case (ASCII mapping only), or ValueError."""
    if not isinstance(value, str) or _SYMBOL.fullmatch(value) is None:
        raise ValueError(SYMBOL_MESSAGE)
    return value.upper()  # only ASCII letters and digits here: no Unicode case mapping


def is_symbol(value: object) -> bool:
    return isinstance(value, str) and _SYMBOL.fullmatch(value) is not None


def is_decimal_text(value: str) -> bool:
    return _DECIMAL.fullmatch(value) is not None


def is_cursor(value: str) -> bool:
    return _CURSOR.fullmatch(value) is not None and int(value) <= CURSOR_MAX
