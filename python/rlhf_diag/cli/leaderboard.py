"""`rlhf-diag leaderboard` (placeholder until that work lands)."""

from __future__ import annotations

NAME = "leaderboard"
HELP = "(not built yet)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise NotImplementedError("rlhf-diag leaderboard is not built yet")
