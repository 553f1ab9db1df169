"""One rule per input: the validator, /openapi.json and the page accept exactly the same.

Each example goes through the request validator, the pattern /openapi.json documents (as
JSON Schema applies it: Python's `re.search`, and ECMA-262 in node), and the pattern the
page's form uses (as a browser applies an HTML `pattern`: anchored, with the `v` flag).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from asyncio.subprocess import PIPE
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import ValidationError

from app.schemas import LimitOrderRequest

SYMBOLS = {
    "BTCUSDT": True, "ltcbtc": True, "1INCHUSDT": True, "Ab": True, "A" * 20: True,
    "A": False, "A" * 21: False, "": False, "BTC-USDT": False, "BTC/USDT": False,
    "BTC USDT": False, " BTCUSDT": False, "BTCUSDT ": False, "BTCUSDT\n": False,
    "\u00df\u00df": False,  # "ßß": str.upper() makes it "SSSS"
    "\uff22\uff34\uff23": False,  # fullwidth "BTC"
    "btc\u0131": False,  # dotless i: upper-cases to "I"
    "\u01c5A": False,  # a titlecase letter
    "\u0663\u0663": False,  # Arabic-Indic digits
    "\u00c9TH": False,
}  # fmt: skip

DECIMALS = {
    "1": True, "0.5": True, "61850": True, "007.50": True, "0.000000000000000001": True,
    "99999999999999999999.999999999999999999": True,
    "+5": False, "-5": False, "1e3": False, "1E3": False, ".5": False, "5.": False,
    " 5": False, "5 ": False, "5\n": False, "": False, "1,5": False, "1_000": False,
    "0x10": False, "NaN": False, "Infinity": False, "1.2.3": False,
    "\u0663": False, "\uff11": False, "\u00b2": False, "1.\u0665": False,
}  # fmt: skip


def _validator_accepts(field: str, value: str) -> bool:
    body = {"symbol": "LTCBTC", "order_size": "1", "price": "1", field: value}
    try:
        LimitOrderRequest.model_validate(body)
    except ValidationError as exc:
        assert [e["loc"] for e in exc.errors()] == [(field,)]
        return False
    return True


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.patterns: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("id"):
            self.patterns[str(values["id"])] = values.get("pattern")


async def _patterns(client: TestClient) -> dict[str, Any]:  # type: ignore[type-arg]
    document = await (await client.get("/openapi.json")).json()
    request = document["components"]["schemas"]["LimitOrderRequest"]["properties"]
    listing = {p["name"]: p["schema"] for p in document["paths"]["/orders"]["get"]["parameters"]}
    page = _Inputs()
    page.feed(await (await client.get("/")).text())
    return {
        "symbol": {
            "openapi": [request["symbol"].get("pattern"), listing["symbol"].get("pattern")],
            "page": [page.patterns["f-symbol"]],
        },
        "decimal": {
            "openapi": [
                next(s.get("pattern") for s in request[field]["anyOf"] if s["type"] == "string")
                for field in ("order_size", "price")
            ],
            "page": [page.patterns["f-size"], page.patterns["f-price"]],
        },
    }


def _cases() -> list[tuple[str, str, str, bool]]:
    return [("symbol", "symbol", value, ok) for value, ok in SYMBOLS.items()] + [
        ("decimal", field, value, ok)
        for value, ok in DECIMALS.items()
        for field in ("order_size", "price")
    ]


async def test_validator_openapi_and_page_agree(client: TestClient) -> None:  # type: ignore[type-arg]
    patterns = await _patterns(client)
    for rule in patterns.values():
        stated = rule["openapi"] + rule["page"]
        assert all(stated), rule  # every place states its rule
        # Anchored at both ends, so a whole-value match in Python is JSON Schema's search in
        # ECMA-262 (Python's `$` alone would also match before a final newline).
        assert all(p.startswith("^") and p.endswith("$") for p in stated), rule
    disagreements = []
    for rule, field, value, expected in _cases():
        verdicts = {"validator": _validator_accepts(field, value)}
        for where in ("openapi", "page"):
            for pattern in patterns[rule][where]:
                verdicts[where] = re.fullmatch(pattern, value) is not None
        if set(verdicts.values()) != {expected}:
            disagreements.append((field, value, expected, verdicts))
    assert not disagreements


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_the_patterns_mean_the_same_in_a_browser(client: TestClient) -> None:  # type: ignore[type-arg]
    """ECMA-262 semantics: JSON Schema `pattern` (unanchored search, `u` flag) and HTML
    `pattern` (the whole value, `v` flag), evaluated by node."""
    patterns = await _patterns(client)
    jobs = []
    for rule, _, value, expected in _cases():
        for pattern in patterns[rule]["openapi"]:
            jobs.append({"source": pattern, "flags": "u", "value": value, "expected": expected})
        for pattern in patterns[rule]["page"]:
            anchored = f"^(?:{pattern})$"
            jobs.append({"source": anchored, "flags": "v", "value": value, "expected": expected})
    script = (
        "const jobs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(jobs.map(j => new RegExp(j.source, j.flags).test(j.value))));"
    )
    node = await asyncio.create_subprocess_exec(
        "node", "-e", script, stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    output, errors = await asyncio.wait_for(node.communicate(json.dumps(jobs).encode()), 30)
    assert node.returncode == 0, errors.decode()
    verdicts = json.loads(output)
    wrong = [job for job, verdict in zip(jobs, verdicts, strict=True) if verdict != job["expected"]]
    assert not wrong
