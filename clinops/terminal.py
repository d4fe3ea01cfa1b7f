"""Consoles that read well where the output goes: a terminal gets rich's usual layout; a pipe, file or log
gets no soft wrapping and room for wide tables, so a JSON answer, a path or a hash stays on one line and a
script or a grep sees it whole. Progress indicators appear only on a terminal (never in logs or CI)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

PIPE_WIDTH = 200  # tables in logs: wide enough for findings and paths, short enough to read


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    # COLUMNS, when set, still decides the table width (tests and narrow log viewers set it).
    width = None if os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(stderr=stderr, soft_wrap=True, width=width)


@contextmanager
def progress(console: Console, message: str) -> Iterator[None]:
    """A spinner with `message` while the block runs, only when `console` is a terminal."""
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield
