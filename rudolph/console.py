"""The CLI's two consoles (stdout and stderr) and the ways it prints.

Neither console parses markup: keys, OCR text and other services' errors are full of square
brackets, and `[/:]` in a key would otherwise crash the command. Styles come from `Text` parts,
and everything from outside goes through `printable`, so no control character reaches the
terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rudolph.printable import printable

# Not on a terminal (a pipe, a file, a test), tables are as wide as their content: wrapped at
# 80 columns, a long key would be cut in two and no longer be found by grep.
_UNWRAPPED = 1_000_000

# soft_wrap: an error line stays one line, whatever the terminal width (and greppable).
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def out() -> Console:
    """A console on the current stdout (click's test runner swaps it)."""
    wide = None if sys.stdout.isatty() else _UNWRAPPED
    return Console(markup=False, highlight=False, width=wide)


def cell(value: object, style: str = "") -> Text:
    """A table cell or line part holding outside text, escaped."""
    return Text(printable(value), style=style)


def lines(values: Iterable[object]) -> Text:
    """Several outside values, one per line of a table cell."""
    return Text("\n").join(cell(value) for value in values)


def error(message: object, *, label: str = "error:", style: str = "red") -> None:
    """`error: <message>` on stderr, one line, the message escaped."""
    err.print(Text.assemble((label, style), " ", printable(message)))


def warning(message: object) -> None:
    error(message, label="warning:", style="yellow")


def table(*columns: str, header: bool = True) -> Table:
    """The CLI's one table style: no box, two spaces between columns."""
    grid = Table(box=None, padding=(0, 2), show_header=header)
    for column in columns:
        grid.add_column(column)
    return grid
