"""JSON with exact decimals: amounts are parsed to ``Decimal`` and written back as JSON numbers."""

import json
import re
from decimal import Decimal
from typing import Any

# json.dumps cannot emit a raw number for an unknown type, so a Decimal first becomes a marked string
# that is then unquoted; the marker (a NUL) cannot occur in real text because JSON escapes it.
_MARKER = "\u0000dec:"
_MARKED_NUMBER = re.compile(r'"\\u0000dec:([-+0-9.eE]+)"')


def _encode_decimal(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{_MARKER}{value}"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    text = json.dumps(value, default=_encode_decimal, separators=(",", ":"), ensure_ascii=False)
    return _MARKED_NUMBER.sub(r"\1", text)


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


class SharingDecoder:
    """Decodes many documents so that equal strings and equal numbers among them are one object each.

    A company's stored objects repeat most of their text (keys, references' names, currencies, dates,
    statuses) and amounts: decoded one by one, a million of them take twice the memory.
    """

    def __init__(self):
        self._strings: dict[str, str] = {}
        self._decimals: dict[str, Decimal] = {}

    def loads(self, texts: list[str]) -> list:
        # One decode for all the documents shares their keys (json's scanner keeps one copy of each key).
        documents = json.loads("[" + ",".join(texts) + "]", parse_float=self._decimal)
        for document in documents:
            self._share_strings(document)
        return documents

    def _decimal(self, text: str) -> Decimal:
        number = self._decimals.get(text)
        if number is None:
            number = self._decimals[text] = Decimal(text)
        return number

    def _share_strings(self, value: dict | list) -> None:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if type(item) is str:
                value[key] = self._strings.setdefault(item, item)
            elif isinstance(item, dict | list):
                self._share_strings(item)
