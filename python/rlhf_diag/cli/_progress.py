"""Progress display for the CLI: a spinner with the step's name and elapsed
time on a terminal, nothing when stderr is not a terminal."""

from __future__ import annotations

import contextlib
import sys
import time

from rich.console import Console


@contextlib.contextmanager
def stage(description: str):
    if not sys.stderr.isatty():
        yield
        return
    console = Console(stderr=True)
    start = time.perf_counter()
    with console.status(description):
        yield
    console.print(f"[dim]{description}: {time.perf_counter() - start:.1f}s[/dim]")
