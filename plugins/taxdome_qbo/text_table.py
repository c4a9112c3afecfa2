"""Plain-text tables for the command line: left-aligned text, right-aligned counts."""

from __future__ import annotations

from collections.abc import Sequence

# Control characters in exported text (an ANSI escape, a carriage return, a line break) would recolor, move
# or overwrite what the terminal shows: they are printed as their escape (`\x1b`) instead.
_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}


def terminal_text(value: object) -> str:
    return "" if value is None else str(value).translate(_CONTROL_ESCAPES)


def text_table(rows: Sequence[Sequence], headers: Sequence[str]) -> str:
    cells = [[terminal_text(h) for h in headers], *[[terminal_text(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]
    lines = [
        "  ".join(v.rjust(w) if right else v.ljust(w) for v, w, right in zip(r, widths, numeric, strict=True))
        for r in cells
    ]
    lines = [line.rstrip() for line in lines]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
