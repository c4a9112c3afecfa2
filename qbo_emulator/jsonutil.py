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
