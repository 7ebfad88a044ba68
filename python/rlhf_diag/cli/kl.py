"""`rlhf-diag kl` (placeholder until that work lands)."""

from __future__ import annotations

NAME = "kl"
HELP = "(not built yet)"


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    raise NotImplementedError("rlhf-diag kl is not built yet")
