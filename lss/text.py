"""Printed lines that fit the page: the chapters' statements wrapped at 88 columns.

A book page shows printed output in a fixed-width block as wide as its code (88
columns, the width the chapters' code is held to); a longer line gets a scroll bar and
hides its end. :func:`say` prints a statement made of parts (the data label, a count,
a dict of counts) wrapped at that width, continuation lines indented, so that what a
chapter prints reads whole on the page, in Colab and in a terminal alike.
``book/run_chapters.py`` stops the build on any wider output line.
"""

from __future__ import annotations

import textwrap
from typing import Any

__all__ = ["PAGE_COLUMNS", "wrap", "say", "command"]

#: The widest line a page shows whole: code and printed output alike.
PAGE_COLUMNS: int = 88


def _part(value: Any) -> str:
    """A part as printed: strings as they are, other values as ``print`` shows them."""
    return value if isinstance(value, str) else str(value)


def wrap(*parts: Any, sep: str = " | ", width: int = PAGE_COLUMNS) -> str:
    """``parts`` joined by ``sep`` and wrapped at ``width``, later lines indented.

    Lines break at spaces; a single word longer than a line (a long file name) is cut,
    so no line is ever wider than ``width``. Line breaks inside a part are kept.

    >>> print(wrap("synthetic phantom (seed 0, 24 studies)", {"toward the feet": 20,
    ...            "toward the head": 4}, width=50))
    synthetic phantom (seed 0, 24 studies) | {'toward
      the feet': 20, 'toward the head': 4}
    >>> wrap("short", 3)
    'short | 3'
    """
    if width < 8:
        raise ValueError(f"width must be >= 8, got {width}")
    lines = []
    for paragraph in sep.join(_part(p) for p in parts).split("\n"):
        lines += textwrap.wrap(paragraph, width, subsequent_indent="  ",
                               break_on_hyphens=False) or [""]
    return "\n".join(lines)


def say(*parts: Any, sep: str = " | ", width: int = PAGE_COLUMNS) -> None:
    """Print :func:`wrap` of ``parts``: ``print`` for a page of ``width`` columns."""
    print(wrap(*parts, sep=sep, width=width))


def _options(cmd: str) -> list[str]:
    """A command's words, each option kept with its value (``--epochs 20``)."""
    groups: list[str] = []
    for word in cmd.split():
        if groups and not word.startswith("-") and groups[-1].startswith("-") \
                and " " not in groups[-1]:
            groups[-1] += " " + word
        else:
            groups.append(word)
    return groups


def command(cmd: str, width: int = PAGE_COLUMNS) -> str:
    """A shell command split over lines with ``\\`` continuations, at most ``width``.

    Options stay with their values; continuation lines are indented four spaces, so
    the printed command can be pasted into a shell as it is.

    >>> print(command("lss train --data /data/rsna --config runs/x/config.json "
    ...               "--run runs/x-again", width=40))
    lss train --data /data/rsna \\
        --config runs/x/config.json \\
        --run runs/x-again
    """
    lines = [""]
    for group in _options(cmd):
        indent = "    " if len(lines) > 1 else ""
        trial = f"{lines[-1]} {group}" if lines[-1] else indent + group
        if len(trial) + 2 > width and lines[-1].strip():
            lines[-1] += " \\"
            lines.append("    " + group)
        else:
            lines[-1] = trial
    return "\n".join(lines)
