"""GET /fills as CSV: which answer the client asked for, and the CSV body.

The CSV rows are the JSON rows' values, as the same exact decimal strings, under a header
line of the field names (FILL_EXPORT_FIELDS); lines end in CRLF (RFC 4180).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from app.ports import OwnedFill
from app.schemas import FILL_EXPORT_FIELDS, owned_fill_json

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
NEXT_CURSOR_HEADER = "X-Next-Cursor"  # absent on the last page (as next_cursor is null)


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def wants_csv(accept: str) -> bool:
    """True when `Accept` names `text/csv` (q > 0) and does not rank `application/json`
    above it; `*/*`, no header, or anything else gets JSON."""
    ranks: dict[str, float] = {}
    for media_range in accept.split(","):
        kind, *parameters = media_range.split(";")
        kind = kind.strip().lower()
        ranks[kind] = max(ranks.get(kind, 0.0), _quality(parameters))
    csv_rank = ranks.get("text/csv", 0.0)
    return csv_rank > 0 and csv_rank >= ranks.get("application/json", 0.0)


def fills_csv(rows: Iterable[OwnedFill]) -> bytes:
    """The header line, then one line per fill, in FILL_EXPORT_FIELDS' order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FILL_EXPORT_FIELDS)
    for row in rows:
        values = owned_fill_json(row)
        writer.writerow([values[field] for field in FILL_EXPORT_FIELDS])
    return out.getvalue().encode()
