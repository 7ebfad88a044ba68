"""The ``rlhf-diag`` command line.

Each subcommand lives in its own module of this package with ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. The CLI only
renders: every figure comes from the result object of the library call.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from rlhf_diag import __version__
from rlhf_diag.exceptions import RlhfDiagError

# Subcommand modules, in the order `--help` lists them.
_COMMANDS = ["audit", "leaderboard", "kl", "flips", "pushback", "probe", "winrate", "reward"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlhf-diag",
        description="Audit RLHF preference data on a Rust core.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log loading decisions"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        module = importlib.import_module(f"rlhf_diag.cli.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    warnings.showwarning = _show_warning
    try:
        return int(args._run(args) or 0)
    except RlhfDiagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
