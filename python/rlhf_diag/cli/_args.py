"""Argument types and checks shared by the subcommands: bad values are
refused by argparse, naming the option, before any work starts."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlhf_diag.exceptions import InputError


def at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


positive_int = at_least(1)


def finite_float(low: float | None = None, *, strict: bool = False):
    """An argparse type: a finite number, at least ``low`` when given (above
    it with ``strict``)."""
    bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        finite = value == value and value not in (float("inf"), float("-inf"))
        if not finite or (
            low is not None and (value <= low if strict else value < low)
        ):
            raise argparse.ArgumentTypeError(f"expected a finite number{bound}, got {text}")
        return value

    parse.__name__ = f"finite number{bound}"
    return parse


def check_output(path: Path | None, option: str) -> None:
    """Refuse an output path whose folder does not exist, before computing."""
    if path is None:
        return
    folder = Path(path).parent
    if not folder.is_dir():
        raise InputError(f"{option} {path}: the folder {folder} does not exist")


def output_console(wide: int):
    """A rich console for a command's tables: a terminal's own width, or
    ``wide`` columns when output goes to a file or a pipe (no terminal to
    wrap for, and logs read better unwrapped)."""
    import sys

    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(width=wide)
