"""Plain-text tables for the command line: left-aligned text, right-aligned counts."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(rows: Sequence[Sequence], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers], *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]
    lines = [
        "  ".join(v.rjust(w) if right else v.ljust(w) for v, w, right in zip(r, widths, numeric, strict=True))
        for r in cells
    ]
    lines = [line.rstrip() for line in lines]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
