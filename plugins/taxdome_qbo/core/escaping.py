"""Text from TaxDome or QuickBooks made inert where finance or a browser reads it.

Spreadsheets: a CSV cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (`=HYPERLINK(…)` becomes a live link, `-2+3` a computed 1). OWASP's
rule for CSV injection makes it text by putting a `'` in front. Which cells get the rule is decided by the
column, not the value: columns we write from numbers (money from integer cents, counts, sequence numbers)
are left as they are, so a negative amount `-12.34` stays a number; every other column carries data and is
escaped, so a TaxDome id that really starts with `-` reads `'-…` in the file.

Markdown: a preview is read in renderers that pass HTML through, so TaxDome text there is a code span,
whose content CommonMark shows literally (no tag, link, image or emphasis opens inside one).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any, TextIO

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
BACKTICK_RUNS = re.compile(r"`+")


def inert_cell(text: str) -> str:
    """A spreadsheet cell that shows `text` and never computes it (OWASP's CSV injection rule)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def inert_row(values: Sequence[Any], numeric: Collection[int]) -> list[Any]:
    """The row with every text cell outside the `numeric` positions made inert; None is written empty."""
    return [
        value if position in numeric or not isinstance(value, str) else inert_cell(value)
        for position, value in enumerate(values)
    ]


def write_csv(
    handle: TextIO, header: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Collection[str] = ()
) -> None:
    """A CSV file finance may open in a spreadsheet: the header, then the rows with their text made inert,
    except in the `numeric` columns, which we write from numbers."""
    positions = frozenset(index for index, name in enumerate(header) if name in numeric)
    writer = csv.writer(handle)
    writer.writerow(header)
    writer.writerows(inert_row(row, positions) for row in rows)


def markdown_code(text: str) -> str:
    """`text` as a Markdown code span: shown as typed, never a tag, link, image or emphasis.

    The fence is one backtick longer than the longest run of backticks in the text, so the text cannot
    close it; line breaks become spaces, as a blank line would end the span and let the rest render.
    """
    flat = " ".join(str(text).splitlines())
    fence = "`" * (max(map(len, BACKTICK_RUNS.findall(flat)), default=0) + 1)
    padding = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{padding}{flat}{padding}{fence}"
